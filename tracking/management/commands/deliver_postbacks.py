"""``python manage.py deliver_postbacks``: the publisher postback worker (tracking/worker.py).

Run one beside the web server (``make run`` does); in production one or more, on any
number of machines sharing the PostgreSQL database (they share the work through
``SELECT … FOR UPDATE SKIP LOCKED``). On SQLite run exactly one.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from tracking.deliveries import LEASE
from tracking.worker import Worker


class Command(BaseCommand):
    help = "Send publisher postback deliveries: retries, logging, many requests in flight."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency", type=int, default=100, help="Requests in flight at most (100)."
        )
        parser.add_argument(
            "--poll", type=float, default=1.0, help="Seconds between looks when idle (1)."
        )
        parser.add_argument(
            "--lease",
            type=float,
            default=LEASE.total_seconds(),
            help="Seconds a claimed delivery stays this worker's (60): after a crash, its "
            "claims are due again this much later.",
        )
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Exit once nothing is due and nothing is in flight (tests, benchmarks).",
        )

    def handle(self, *args: object, **options: object) -> None:
        concurrency = int(options["concurrency"])  # type: ignore[arg-type]
        if not 1 <= concurrency <= 1000:
            self.stderr.write("--concurrency must be between 1 and 1000")
            raise SystemExit(2)
        worker = Worker(
            concurrency=concurrency,
            poll_seconds=float(options["poll"]),  # type: ignore[arg-type]
            lease=timedelta(seconds=float(options["lease"])),  # type: ignore[arg-type]
            until_idle=bool(options["until_idle"]),
        )
        if int(options["verbosity"]) >= 1:  # type: ignore[arg-type]
            self.stdout.write(f"Delivering publisher postbacks ({concurrency} in flight at most)")
            self.stdout.flush()
        attempts = worker.run_forever()
        if int(options["verbosity"]) >= 1:  # type: ignore[arg-type]
            self.stdout.write(f"Stopped after {attempts} attempts")
