"""Make the monthly partitions (postback log, delivery log) ahead of time (PostgreSQL;
tracking/partitions.py).

Safe to run from cron or the systemd timer (deploy/clicktrail-prune.timer runs it through
``prune``) as often as wanted: a month that has its partition is left alone. Also moves rows
that landed in the DEFAULT partition (a month that had none) into their month's partition.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.utils import timezone

from tracking import partitions


class Command(BaseCommand):
    help = (
        "Create the partitions of the postback log and the publisher delivery log for this "
        "month and the coming months."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=settings.PARTITION_MONTHS_AHEAD,
            help="How many months after this one get a partition "
            f"(default PARTITION_MONTHS_AHEAD, {settings.PARTITION_MONTHS_AHEAD}).",
        )
        parser.add_argument(
            "--lock-timeout-ms",
            type=int,
            default=partitions.LOCK_TIMEOUT_MS,
            help="Give up on a partition (the next run retries) rather than wait longer "
            "than this for a lock.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["months_ahead"] < 0:
            raise CommandError("--months-ahead must be 0 or more.")
        tables = [table for table in partitions.PARTITIONED if partitions.is_partitioned(table)]
        if not tables:
            self.stdout.write("No partitioned tables on this database (SQLite): nothing to do.")
            return
        try:
            created = partitions.ensure_partitions(
                now=timezone.now(),
                months_ahead=options["months_ahead"],
                lock_timeout_ms=options["lock_timeout_ms"],
            )
        except OperationalError as exc:
            raise CommandError(f"A partition could not be made now (run again): {exc}") from exc
        for name in created:
            self.stdout.write(f"Created {name}")
        for table in tables:
            months = [p for p in partitions.partitions(table) if not p.is_default]
            last = f"{months[-1].start:%Y-%m}" if months else "none"
            self.stdout.write(
                self.style.SUCCESS(
                    f"{table}: {len(months)} monthly partitions, the last for {last}"
                    + ("" if created else "; nothing to create")
                )
            )
