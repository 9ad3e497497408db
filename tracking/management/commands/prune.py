"""Remove what is past retention (tracking/retention.py): a dry run unless ``--apply``."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tracking.partitions import LOCK_TIMEOUT_MS
from tracking.retention import DEFAULT_PAUSE_FACTOR, prune, prune_plan


def _size(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return ""  # pragma: no cover


class Command(BaseCommand):
    help = (
        "Remove postback log rows, publisher deliveries and unconverted clicks past retention "
        "(POSTBACK_LOG_RETENTION_DAYS, DELIVERY_RETENTION_DAYS, CLICK_RETENTION_DAYS). Prints "
        "what it would remove unless --apply."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--apply", action="store_true", help="Remove; without it, only print.")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Rows deleted per transaction."
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to sleep after each batch, on top of --pause-factor's rest.",
        )
        parser.add_argument(
            "--pause-factor",
            type=float,
            default=DEFAULT_PAUSE_FACTOR,
            help="After each batch, rest this many times as long as the batch took: the "
            "share of the machine a prune takes, whatever the load (default "
            f"{DEFAULT_PAUSE_FACTOR:g}: it works 1/{1 + DEFAULT_PAUSE_FACTOR:g} of the time; "
            "0 to go flat out, e.g. in a quiet hour).",
        )
        parser.add_argument(
            "--lock-timeout-ms",
            type=int,
            default=LOCK_TIMEOUT_MS,
            help="Longest wait for a lock (PostgreSQL); a step that waits longer is left "
            "for the next run.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1 or options["lock_timeout_ms"] < 1:
            raise CommandError("--batch-size and --lock-timeout-ms must be positive.")
        if options["pause"] < 0 or options["pause_factor"] < 0:
            raise CommandError("--pause and --pause-factor must be 0 or more.")
        now = timezone.now()
        apply = options["apply"]
        plan = prune_plan(now=now, count_clicks=not apply)
        write = self.stdout.write
        verb = "" if apply else "would "
        if not apply:
            write("Dry run: nothing is removed (add --apply to remove it).")
        write(
            f"Postback log: kept {settings.POSTBACK_LOG_RETENTION_DAYS} days, by whole months: "
            f"rows created before {plan.log_before:%Y-%m-%d %H:%M} UTC are past retention."
        )
        self._partitions(plan.log_partitions, verb)
        write(f"  {verb}delete {plan.log_rows:,} rows one batch at a time")
        write(
            f"Publisher delivery log: kept {settings.DELIVERY_RETENTION_DAYS} days from the "
            "reported record's creation, by the records' whole months: deliveries of records "
            f"created before {plan.delivery_before:%Y-%m-%d %H:%M} UTC are past retention, "
            "once sent or given up."
        )
        self._partitions(plan.delivery_partitions, verb, what=" and its month of attempts")
        write(f"  {verb}delete {plan.delivery_rows:,} deliveries one batch at a time")
        write(
            f"Clicks: unconverted ones kept {settings.CLICK_RETENTION_DAYS} days: those created "
            f"before {plan.click_before:%Y-%m-%d %H:%M} UTC are past retention."
        )
        if plan.clicks is None:
            write("  delete them one batch at a time (counted as they go)")
        else:
            write(f"  would delete {plan.clicks:,} unconverted clicks")
        for name in plan.missing_partitions:
            write(f"Partitions: {verb}create {name}")
        if not apply:
            return
        started = timezone.now()
        result = prune(
            now=now,
            batch_size=options["batch_size"],
            pause=options["pause"],
            pause_factor=options["pause_factor"],
            lock_timeout_ms=options["lock_timeout_ms"],
            progress=write,
        )
        elapsed = (timezone.now() - started).total_seconds()
        summary = (
            f"Pruned in {elapsed:.1f} s: {len(result.dropped_partitions)} log partitions and "
            f"{len(result.delivery_dropped)} delivery log partitions dropped, "
            f"{result.log_rows:,} log rows, {result.delivery_rows:,} deliveries and "
            f"{result.clicks:,} clicks deleted."
        )
        skipped = result.skipped_partitions + result.delivery_skipped
        if skipped:
            self.stderr.write(
                f"Not dropped (a lock was not granted in time; the next run tries again): "
                f"{', '.join(skipped)}"
            )
        if result.delivery_held:
            write(
                "Kept until their deliveries are sent or given up (the next run drops them): "
                f"{', '.join(result.delivery_held)}"
            )
        write(self.style.SUCCESS(summary))

    def _partitions(self, droppable: list, verb: str, what: str = "") -> None:
        for month in droppable:
            estimate = "unknown" if month.estimate is None else f"{month.estimate:,}"
            self.stdout.write(
                f"  {verb}drop partition {month.partition.name}{what} "
                f"({month.partition.start:%Y-%m}: {_size(month.size)}, about {estimate} rows)"
            )
