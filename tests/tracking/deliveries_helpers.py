"""Shared helpers for the delivery tests: a clock to set, and the worker run in-process."""

from datetime import datetime, timedelta

from django.utils import timezone

from tracking.worker import Worker


class Clock:
    """The worker's clock, moved by the test (no test sleeps through a backoff)."""

    def __init__(self) -> None:
        self.now = timezone.now() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def run_worker(clock: Clock | None = None, *, attempt_seconds: float = 2.0) -> int:
    """Run the worker until nothing is due; the number of attempts it made."""
    worker = Worker(
        concurrency=20,
        poll_seconds=0.05,
        until_idle=True,
        clock=clock or Clock(),
        attempt_seconds=attempt_seconds,
    )
    return worker.run_forever()
