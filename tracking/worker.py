"""The delivery worker's loop: many requests in flight on one event loop.

``manage.py deliver_postbacks`` runs ``Worker.run``. The loop claims due deliveries
(tracking/deliveries.py ``deliveries_claim``) as slots free up, starts one request per
delivery with a shared ``httpx.AsyncClient`` (tracking/outbound.py), and hands finished
attempts to a recorder that writes them in batches. The database is used from one
thread of its own (Django's ORM is synchronous), so the loop never waits on it while
requests are in flight, and one connection serves the worker.

Stopping (SIGTERM, SIGINT): no new claims; the attempts in flight finish (each has 5 s at
most) and are recorded; then the process exits. A worker killed outright (SIGKILL, a lost
machine) leaves its claims to come back after their lease: delivery is at least once, and
only that worker's unrecorded attempts can be sent again.
"""

import asyncio
import logging
import random
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import connections
from django.utils import timezone

from tracking.deliveries import (
    LEASE,
    Attempted,
    Claimed,
    attempts_record,
    deliveries_claim,
    postback_disable_if_failing,
)
from tracking.outbound import ATTEMPT_SECONDS, Lane, send

logger = logging.getLogger("tracking.worker")
# httpx logs every request's whole URL at INFO: publisher URLs carry their secrets
# (tokens, keys), which the delivery log masks and no server log may keep.
logging.getLogger("httpx").setLevel(logging.WARNING)


class Worker:
    def __init__(
        self,
        *,
        concurrency: int = 100,
        poll_seconds: float = 1.0,
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = timezone.now,
        until_idle: bool = False,
        rng: random.Random | None = None,
        attempt_seconds: float = ATTEMPT_SECONDS,
    ) -> None:
        self.attempt_seconds = attempt_seconds
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.clock = clock
        self.until_idle = until_idle
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        # Claim when at least this many slots are free (or none is busy): fewer, bigger
        # claims under load.
        self.claim_threshold = max(1, concurrency // 10)
        self.attempts = 0
        self._results: list[Attempted] = []
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliveries-db")
        self._stop: asyncio.Event | None = None
        self._lanes: asyncio.Queue[Lane] | None = None
        self._has_results: asyncio.Event | None = None
        self._closing = False

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _db(self, function: Callable[..., Any], /, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, partial(function, **kwargs))

    def run_forever(self) -> int:
        """Run until stopped (or idle, with ``until_idle``); the number of attempts made."""
        try:
            return asyncio.run(self.run())
        finally:
            self._db_thread.submit(connections.close_all).result()
            self._db_thread.shutdown()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._has_results = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
        # One lane per request in flight (tracking/outbound.py): a delivery's task takes a
        # free one; there is always one, since no more tasks run than there are lanes.
        lanes = [Lane() for _ in range(self.concurrency)]
        self._lanes = asyncio.Queue()
        for lane in lanes:
            self._lanes.put_nowait(lane)
        try:
            await self._loop()
        finally:
            for lane in lanes:
                await lane.aclose()
        return self.attempts

    async def _loop(self) -> None:
        assert self._stop is not None and self._has_results is not None
        in_flight: set[asyncio.Task] = set()
        recorder = asyncio.create_task(self._recorder())
        try:
            while not self._stop.is_set():
                claimed: list[Claimed] = []
                free = self.concurrency - len(in_flight)
                if free >= self.claim_threshold or not in_flight:
                    claimed = await self._claim(free)
                    for delivery in claimed:
                        in_flight.add(asyncio.create_task(self._attempt(delivery)))
                if not in_flight:
                    if self.until_idle and not claimed and not self._results:
                        break
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.poll_seconds)
                    continue
                done, _ = await asyncio.wait(
                    in_flight, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                in_flight -= done
        finally:
            # In-flight attempts finish (5 s at most each) and are recorded before exit.
            if in_flight:
                await asyncio.wait(in_flight)
            self._closing = True
            self._has_results.set()
            await recorder

    async def _claim(self, free: int) -> list[Claimed]:
        try:
            return await self._db(deliveries_claim, limit=free, now=self.clock(), lease=self.lease)
        except Exception:
            logger.exception("Could not claim deliveries; trying again shortly")
            return []

    async def _attempt(self, delivery: Claimed) -> None:
        at = self.clock()
        assert self._lanes is not None
        lane = await self._lanes.get()
        try:
            result = await send(lane, delivery.url, timeout=self.attempt_seconds)
        finally:
            self._lanes.put_nowait(lane)
        self.attempts += 1
        self._results.append(Attempted(delivery=delivery, result=result, at=at))
        assert self._has_results is not None
        self._has_results.set()

    async def _recorder(self) -> None:
        """Write finished attempts in batches: whatever finished while the last batch was
        being written goes in the next."""
        assert self._has_results is not None
        failures = 0
        while True:
            await self._has_results.wait()
            self._has_results.clear()
            batch, self._results = self._results, []
            if batch:
                try:
                    failed = await self._db(
                        attempts_record, attempts=batch, now=self.clock(), rng=self.rng
                    )
                    for postback_id in failed:
                        if await self._db(
                            postback_disable_if_failing, postback_id=postback_id, now=self.clock()
                        ):
                            logger.warning("Publisher postback %s disabled: failing", postback_id)
                    failures = 0
                except Exception:
                    # Unrecorded attempts are not lost work: their deliveries come back when
                    # the lease ends. Keep trying for a while (a database restart).
                    failures += 1
                    logger.exception("Could not record %d attempts", len(batch))
                    if failures < 5:
                        self._results[:0] = batch
                        await asyncio.sleep(1)
                        self._has_results.set()
                        continue
            if self._closing and not self._results:
                return
