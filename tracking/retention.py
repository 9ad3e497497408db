"""Retention: what ``manage.py prune`` removes, and how without disturbing the tracking path.

The rules (settings in config/settings/base.py):

- **Postback log**: rows are kept at least ``POSTBACK_LOG_RETENTION_DAYS`` days, then
  removed by whole UTC months: everything created before the first instant of the month
  that holds ``now - POSTBACK_LOG_RETENTION_DAYS`` (``log_cutoff``). On PostgreSQL a month
  is a partition (tracking/partitions.py) and goes with one ``DROP TABLE``; rows that sat
  in the DEFAULT partition, and every row on SQLite, are deleted in small batches.
- **Clicks** that never converted are kept ``CLICK_RETENTION_DAYS`` days (to the second),
  then deleted in small batches. A click that anything references through a database
  constraint (its conversion, its event records: every such relation the ORM knows) is
  never removed, nor are conversions and event records themselves.
- **Publisher delivery log** (deliveries and their attempts): kept at least
  ``DELIVERY_RETENTION_DAYS`` days counted from the reported record's creation, then removed
  by the records' whole UTC months (``delivery_cutoff``): the partition key on PostgreSQL
  (tracking/partitions.py), where a month of deliveries and its month of attempts go with
  one ``DROP TABLE`` each. A delivery still queued or retrying is never removed: its month
  waits for the next run (retries end within 72 hours). Elsewhere, batched deletes.
- A click referenced only by postback log rows is removed all the same: the log keeps no
  database link to it by design (models.py) and stays readable on its own (the
  ``transaction_id``, parameters, reason and message are in the row). Keeping such clicks
  would tie click retention to log retention and cost a lookup in every log partition for
  every click considered.

Each batch is its own short transaction: its row locks last milliseconds, a lock not
granted within ``lock_timeout_ms`` fails that step instead of queueing the postbacks that
arrive behind it, and clicks are locked with ``SKIP LOCKED`` so a postback touching one
just now keeps it for the next run. What was removed is recorded (``PruneMark``), so
reports over those periods can say so; their totals come from the records and the hourly
totals, which are never pruned.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from offers.models import Offer
from tracking import partitions
from tracking.models import Click, Delivery, DeliveryAttempt, PostbackLog, PruneMark

LOG_TABLE = PostbackLog._meta.db_table
DELIVERY_TABLE = Delivery._meta.db_table
ATTEMPT_TABLE = DeliveryAttempt._meta.db_table
#: Deliveries the worker still has to send: never removed, nor the month that holds them.
PENDING_SQL = "outcome IN ({})".format(", ".join(f"'{o}'" for o in Delivery.PENDING))
DROP_ATTEMPTS = 5
#: ``manage.py prune``'s rest after each batch, as a multiple of the batch's time (``Pace``):
#: measured in docs/benchmarks.md "Retention".
DEFAULT_PAUSE_FACTOR = 4.0

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def log_cutoff(*, now: datetime, retention_days: int) -> datetime:
    """Log rows created before this are past retention: the start of the UTC month holding
    ``now - retention_days`` (so a row is kept at least ``retention_days`` days)."""
    return partitions.month_start(now - timedelta(days=retention_days))


def delivery_cutoff(*, now: datetime, retention_days: int) -> datetime:
    """Deliveries of records created before this are past retention (once sent or given
    up): the start of the UTC month holding ``now - retention_days``, by the record's
    month, which all deliveries of a record share (the partition key)."""
    return log_cutoff(now=now, retention_days=retention_days)


def longest_conversion_window_days() -> int | None:
    """The longest ``conversion_window_days`` of any offer, once offers carry that field
    (a separate issue adds it); None until then."""
    if not any(f.name == "conversion_window_days" for f in Offer._meta.concrete_fields):
        return None
    return Offer.objects.aggregate(longest=models.Max("conversion_window_days"))["longest"]


def click_cutoff(
    *, now: datetime, retention_days: int, longest_window_days: int | None = None
) -> datetime:
    """Unconverted clicks created before this are past retention. Never sooner than the
    longest conversion window plus 30 days: a click that may still convert is kept."""
    if longest_window_days is not None:
        retention_days = max(retention_days, longest_window_days + 30)
    return now - timedelta(days=retention_days)


def _protecting_relations() -> list:
    """The relations that keep a click: every foreign key to it with a database constraint
    (conversions, event records, and whatever is added later with one). The postback log's
    link has none and keeps nothing."""
    return [
        relation
        for relation in Click._meta.related_objects
        if not relation.many_to_many and getattr(relation.field, "db_constraint", False)
    ]


def _unreferenced(clicks: models.QuerySet) -> models.QuerySet:
    """``clicks`` that nothing references through a database constraint."""
    for relation in _protecting_relations():
        field = relation.field
        related = relation.related_model._base_manager.filter(**{field.attname: OuterRef("pk")})
        clicks = clicks.filter(~Exists(related))
    return clicks


@functools.cache
def _delete_clicks_sql() -> str:
    """PostgreSQL: delete the unreferenced clicks among the IDs given, in one statement.

    Measured: Django's ``QuerySet.delete()`` loads every click of a batch as a model and
    queries each PROTECT relation again before it deletes (about 2,600 clicks/s, most of it
    in Python); this statement does the same check in the database. ``SKIP LOCKED``: a
    click a postback is converting right now (its row locked by the insert's key check) is
    skipped, not waited for, and the conversion then keeps it."""
    quote = connection.ops.quote_name
    click = quote(Click._meta.db_table)
    kept = " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {quote(r.related_model._meta.db_table)} AS r "  # noqa: S608
        f"WHERE r.{quote(r.field.column)} = c.id)"
        for r in _protecting_relations()
    )
    return (
        f"WITH doomed AS (SELECT c.id FROM {click} AS c "  # noqa: S608 - names from the models
        f"WHERE c.id = ANY(%s) AND {kept or 'TRUE'} FOR UPDATE OF c SKIP LOCKED) "
        f"DELETE FROM {click} AS c USING doomed WHERE c.id = doomed.id"
    )


def prunable_clicks(before: datetime) -> models.QuerySet:
    return _unreferenced(Click.objects.filter(created_at__lt=before))


@dataclass(frozen=True)
class DroppablePartition:
    partition: partitions.Partition
    size: int
    estimate: int | None


def _droppable(table: str, before: datetime) -> list[DroppablePartition]:
    """``table``'s monthly partitions wholly before ``before``, with their sizes."""
    return [
        DroppablePartition(partition, *partitions.size_and_estimate(partition.name))
        for partition in partitions.partitions(table)
        if not partition.is_default and partition.end <= before
    ]


def _default_rows(table: str, where: str, params: list) -> int:
    """Rows of ``table``'s DEFAULT partition meeting ``where`` (0 without one)."""
    default = partitions.default_partition(table)
    if default is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{default}" WHERE {where}', params)  # noqa: S608
        return cursor.fetchone()[0]


def _expired_deliveries(before: datetime) -> models.QuerySet:
    """Deliveries of records created before ``before`` that the worker is done with."""
    return Delivery.objects.filter(record_created_at__lt=before).exclude(
        outcome__in=Delivery.PENDING
    )


@dataclass(frozen=True)
class PrunePlan:
    """What a prune at ``now`` removes (the dry run prints it)."""

    now: datetime
    log_before: datetime
    click_before: datetime
    #: PostgreSQL: the log's monthly partitions wholly before ``log_before``.
    log_partitions: list[DroppablePartition]
    #: Log rows deleted row by row: on SQLite all of them, on PostgreSQL those not in a
    #: partition above (the DEFAULT partition's).
    log_rows: int
    clicks: int | None
    #: PostgreSQL: the partitions ``manage.py partitions`` would make first.
    missing_partitions: list[str]
    delivery_before: datetime
    #: PostgreSQL: the delivery log's monthly partitions wholly before ``delivery_before``
    #: (each goes with its month of attempts, unless it holds a pending delivery).
    delivery_partitions: list[DroppablePartition] = field(default_factory=list)
    #: Deliveries deleted row by row (with their attempts): on SQLite all of them, on
    #: PostgreSQL those in the DEFAULT partition.
    delivery_rows: int = 0


def prune_plan(*, now: datetime | None = None, count_clicks: bool = True) -> PrunePlan:
    """What ``prune`` would remove at ``now``, read without changing anything. Counting
    the expired clicks reads all of them: ``count_clicks=False`` leaves ``clicks`` None."""
    now = now or timezone.now()
    log_before = log_cutoff(now=now, retention_days=settings.POSTBACK_LOG_RETENTION_DAYS)
    click_before = click_cutoff(
        now=now,
        retention_days=settings.CLICK_RETENTION_DAYS,
        longest_window_days=longest_conversion_window_days(),
    )
    delivery_before = delivery_cutoff(now=now, retention_days=settings.DELIVERY_RETENTION_DAYS)
    droppable, delivery_droppable, missing = [], [], []
    log_rows = PostbackLog.objects.filter(created_at__lt=log_before).count
    delivery_rows = _expired_deliveries(delivery_before).count
    if partitions.is_partitioned(LOG_TABLE):
        droppable = _droppable(LOG_TABLE, log_before)

        # Every month before log_before is a partition above (months are whole), so the rows
        # deleted one by one can only be the DEFAULT partition's: count only there, not
        # through the indexes of the months about to be dropped.
        def log_rows() -> int:
            return _default_rows(LOG_TABLE, "created_at < %s", [log_before])

        first = partitions.month_start(now)
        wanted = [
            partitions.add_months(first, n) for n in range(settings.PARTITION_MONTHS_AHEAD + 1)
        ]
        for table in partitions.PARTITIONED:
            if not partitions.is_partitioned(table):
                continue
            with connection.cursor() as cursor:
                months = wanted + partitions.default_months(cursor, table)
            missing += [
                partitions.partition_name(table, month)
                for month in partitions.missing_months(partitions.partitions(table), months)
            ]
    if partitions.is_partitioned(DELIVERY_TABLE):
        delivery_droppable = _droppable(DELIVERY_TABLE, delivery_before)

        def delivery_rows() -> int:
            return _default_rows(
                DELIVERY_TABLE,
                f"record_created_at < %s AND NOT {PENDING_SQL}",
                [delivery_before],
            )

    return PrunePlan(
        now=now,
        log_before=log_before,
        click_before=click_before,
        log_partitions=droppable,
        log_rows=log_rows(),
        clicks=prunable_clicks(click_before).count() if count_clicks else None,
        missing_partitions=missing,
        delivery_before=delivery_before,
        delivery_partitions=delivery_droppable,
        delivery_rows=delivery_rows(),
    )


@dataclass
class PruneResult:
    created_partitions: list[str] = field(default_factory=list)
    dropped_partitions: list[str] = field(default_factory=list)
    #: Partitions whose drop did not get its lock in time: the next run drops them.
    skipped_partitions: list[str] = field(default_factory=list)
    log_rows: int = 0
    clicks: int = 0
    #: The delivery log's months dropped (each with its month of attempts), those whose
    #: drop did not get its lock in time, and those kept because a delivery in them is
    #: still queued or retrying: the next run drops both kinds.
    delivery_dropped: list[str] = field(default_factory=list)
    delivery_skipped: list[str] = field(default_factory=list)
    delivery_held: list[str] = field(default_factory=list)
    delivery_rows: int = 0


def _lock_timeout(lock_timeout_ms: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


class _Reporter:
    """Prints progress at most once a second (and always at the end)."""

    def __init__(self, progress: Progress, what: str) -> None:
        self.progress, self.what = progress, what
        self.started = self.last = time.monotonic()

    def __call__(self, count: int, *, done: bool = False) -> None:
        now = time.monotonic()
        if done or now - self.last >= 1:
            self.last = now
            rate = count / max(now - self.started, 1e-9)
            state = "done" if done else "so far"
            self.progress(f"  {self.what}: {count:,} deleted {state} ({rate:,.0f}/s)")


@dataclass(frozen=True)
class Pace:
    """The rest after each batch, which leaves the tracking path its room: ``pause``
    seconds, plus ``factor`` times what the batch took. The factor keeps the share of the
    machine a prune takes the same on any machine and under any load (a batch that takes
    longer because postbacks are busy is followed by a longer rest): with factor 2, the
    prune works a third of the time."""

    pause: float = 0.0
    factor: float = 0.0

    def rest(self, started: float) -> None:
        seconds = self.pause + self.factor * (time.monotonic() - started)
        if seconds > 0:
            time.sleep(seconds)


def _delete_in_batches(
    rows: models.QuerySet,
    what: str,
    *,
    batch_size: int,
    pace: Pace,
    lock_timeout_ms: int,
    progress: Progress,
) -> int:
    """Delete ``rows`` (and what cascades from them) ``batch_size`` at a time, each batch
    its own transaction, resting after each as ``pace`` says; return how many went."""
    label, report, total = rows.model._meta.label, _Reporter(progress, what), 0
    while True:
        started = time.monotonic()
        with transaction.atomic():
            _lock_timeout(lock_timeout_ms)
            ids = list(rows.order_by().values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            _, deleted = rows.filter(id__in=ids).delete()
        total += deleted.get(label, 0)
        report(total)
        pace.rest(started)
    report(total, done=True)
    return total


def _delete_clicks(
    before: datetime, *, batch_size: int, pace: Pace, lock_timeout_ms: int, progress: Progress
) -> int:
    """Delete unreferenced clicks created before ``before``, oldest first, in batches.

    The walk goes by ``(created_at, id)`` from where the last batch stopped, so the clicks
    that stay (converted ones) are read once, not again by every batch."""
    report, total = _Reporter(progress, "unconverted clicks"), 0
    after: tuple[datetime, int] | None = None
    while True:
        started = time.monotonic()
        candidates = Click.objects.filter(created_at__lt=before)
        if after is not None:
            # A range on created_at the index can seek to, not an OR it would have to scan
            # from the start (over every row deleted so far) on each batch.
            candidates = candidates.filter(created_at__gte=after[0]).exclude(
                created_at=after[0], id__lte=after[1]
            )
        page = list(
            candidates.order_by("created_at", "id").values_list("created_at", "id")[:batch_size]
        )
        if not page:
            break
        after = page[-1]
        ids = [pk for _, pk in page]
        with transaction.atomic():
            _lock_timeout(lock_timeout_ms)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(_delete_clicks_sql(), [ids])
                    total += cursor.rowcount
            else:
                doomed = list(
                    _unreferenced(Click.objects.filter(id__in=ids)).values_list("id", flat=True)
                )
                if doomed:
                    deleted = Click.objects.filter(id__in=doomed).delete()[1]
                    total += deleted.get(Click._meta.label, 0)
        report(total)
        pace.rest(started)
    report(total, done=True)
    return total


def _mark(kind: str, before: datetime) -> None:
    """Record that rows of ``kind`` created before ``before`` are gone (never moving back)."""
    mark = PruneMark.objects.filter(kind=kind).first()
    if mark is None:
        PruneMark.objects.create(kind=kind, before=before, pruned_at=timezone.now())
    else:
        mark.before = max(mark.before, before)
        mark.pruned_at = timezone.now()
        mark.save(update_fields=["before", "pruned_at"])


@dataclass
class _Drops:
    dropped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # the lock was not granted in time
    held: list[str] = field(default_factory=list)  # rows in it that must stay (keep_if)


def _drop_months(
    table: str,
    months: list[DroppablePartition],
    *,
    before: datetime,
    lock_timeout_ms: int,
    drop_attempts: int,
    progress: Progress,
    keep_if: str | None = None,
) -> _Drops:
    """Drop ``table``'s partitions ``months``, each tried ``drop_attempts`` times should
    its lock not be granted in time; first the months before ``before`` that an earlier
    run detached but did not drop."""
    drops = _Drops()
    for leftover in partitions.detached_leftovers(table):
        if leftover.end <= before:
            partitions.drop_detached(leftover.name, lock_timeout_ms=lock_timeout_ms)
            progress(f"  dropped {leftover.name}, detached by an earlier run")
    for droppable in months:
        name = droppable.partition.name
        for attempt in range(1, drop_attempts + 1):
            try:
                dropped = partitions.drop_partition(
                    table, name, lock_timeout_ms=lock_timeout_ms, keep_if=keep_if
                )
            except partitions.PartitionInUse:
                drops.held.append(name)
                progress(f"  {name}: kept, it holds deliveries still to be sent")
                break
            except OperationalError as exc:
                progress(f"  {name}: not dropped, attempt {attempt} ({exc})".strip())
                if attempt < drop_attempts:
                    time.sleep(0.5 * attempt)
                continue
            drops.dropped.append(name)
            progress(
                f"  dropped partition {name}: detached in {dropped.detach:.3f} s (the table "
                f"locked), its files removed in {dropped.drop:.3f} s (nothing locked)"
            )
            break
        else:
            drops.skipped.append(name)
    return drops


def _start_of_first(
    months: list[DroppablePartition], names: list[str], default: datetime
) -> datetime:
    """Where row-by-row deletion stops: before the first of ``months`` named in ``names``
    (not dropped: its rows wait for the next run whole), else at ``default``."""
    starts = [m.partition.start for m in months if m.partition.name in names]
    return min(starts, default=default)


def _prune_deliveries(
    plan: PrunePlan,
    result: PruneResult,
    *,
    batch_size: int,
    pace: Pace,
    lock_timeout_ms: int,
    drop_attempts: int,
    progress: Progress,
) -> None:
    """The delivery log's part of ``prune``: whole months of deliveries, each with its month
    of attempts, unless one is still to be sent; then what is left row by row."""
    before = plan.delivery_before
    drop = functools.partial(
        _drop_months,
        before=before,
        lock_timeout_ms=lock_timeout_ms,
        drop_attempts=drop_attempts,
        progress=progress,
    )
    if partitions.is_partitioned(DELIVERY_TABLE):
        drops = drop(DELIVERY_TABLE, plan.delivery_partitions, keep_if=PENDING_SQL)
        result.delivery_dropped = drops.dropped
        result.delivery_skipped, result.delivery_held = drops.skipped, drops.held
        # The attempts' months whose deliveries' month is gone (now or by an earlier run).
        kept = {p.start for p in partitions.partitions(DELIVERY_TABLE) if not p.is_default}
        attempts = [m for m in _droppable(ATTEMPT_TABLE, before) if m.partition.start not in kept]
        attempt_drops = drop(ATTEMPT_TABLE, attempts)
        result.delivery_dropped += attempt_drops.dropped
        result.delivery_skipped += attempt_drops.skipped
        before = _start_of_first(
            plan.delivery_partitions, drops.skipped + drops.held, default=before
        )
    # What is left: on SQLite all of it, on PostgreSQL the DEFAULT partition's. Attempts go
    # with their deliveries (on_delete CASCADE, applied by the ORM).
    result.delivery_rows = _delete_in_batches(
        _expired_deliveries(before),
        "deliveries",
        batch_size=batch_size,
        pace=pace,
        lock_timeout_ms=lock_timeout_ms,
        progress=progress,
    )


def prune(
    *,
    now: datetime | None = None,
    batch_size: int = 1000,
    pause: float = 0.0,
    pause_factor: float = DEFAULT_PAUSE_FACTOR,
    lock_timeout_ms: int = partitions.LOCK_TIMEOUT_MS,
    drop_attempts: int = DROP_ATTEMPTS,
    progress: Progress = _quiet,
) -> PruneResult:
    """Remove what the retention settings say is past retention at ``now`` (see the module
    docstring): make the coming months' partitions, drop the log's expired months, delete
    what is left row by row in batches of ``batch_size`` (resting between batches as
    ``Pace(pause, pause_factor)`` says), then the delivery log's expired months and rows,
    then the expired unconverted clicks. Each step is its own transaction; a run stopped
    half way leaves a consistent database, and the next run goes on. A month whose drop
    does not get its lock in ``lock_timeout_ms`` is tried ``drop_attempts`` times, then
    left (with its rows) for the next run."""
    now = now or timezone.now()
    plan = prune_plan(now=now, count_clicks=False)
    pace = Pace(pause=pause, factor=pause_factor)
    result = PruneResult()
    if connection.vendor == "postgresql":
        result.created_partitions = partitions.ensure_partitions(
            now=now,
            months_ahead=settings.PARTITION_MONTHS_AHEAD,
            lock_timeout_ms=lock_timeout_ms,
        )
        for name in result.created_partitions:
            progress(f"  created partition {name}")
    log_before = plan.log_before
    if partitions.is_partitioned(LOG_TABLE):
        drops = _drop_months(
            LOG_TABLE,
            plan.log_partitions,
            before=log_before,
            lock_timeout_ms=lock_timeout_ms,
            drop_attempts=drop_attempts,
            progress=progress,
        )
        result.dropped_partitions, result.skipped_partitions = drops.dropped, drops.skipped
        # Never delete an undropped month row by row: keep the rows from its start for the
        # next run, and only claim what is really gone.
        log_before = _start_of_first(plan.log_partitions, drops.skipped, default=log_before)
    # What is left: on SQLite all of it, on PostgreSQL the DEFAULT partition's.
    result.log_rows = _delete_in_batches(
        PostbackLog.objects.filter(created_at__lt=log_before),
        "postback log rows",
        batch_size=batch_size,
        pace=pace,
        lock_timeout_ms=lock_timeout_ms,
        progress=progress,
    )
    _mark(PruneMark.Kind.POSTBACK_LOG, log_before)
    _prune_deliveries(
        plan,
        result,
        batch_size=batch_size,
        pace=pace,
        lock_timeout_ms=lock_timeout_ms,
        drop_attempts=drop_attempts,
        progress=progress,
    )
    result.clicks = _delete_clicks(
        plan.click_before,
        batch_size=batch_size,
        pace=pace,
        lock_timeout_ms=lock_timeout_ms,
        progress=progress,
    )
    _mark(PruneMark.Kind.CLICKS, plan.click_before)
    return result


def pruned_before() -> dict[str, datetime | None]:
    """The marks: of each kind, the rows created before when are gone (None: none pruned)."""
    marks = {mark.kind: mark.before for mark in PruneMark.objects.all()}
    return {kind: marks.get(kind) for kind in PruneMark.Kind.values}


def period_pruned(period_start: datetime | None) -> dict[str, object]:
    """What a report over a period starting at ``period_start`` (None: from the beginning)
    should say about retention: whether raw rows of it were pruned, and before when.

    The report's own numbers are unaffected (they come from the records and the hourly
    totals); what is gone is the postback log's rows (outcomes by reason) and the clicks
    that never converted."""
    marks = pruned_before()
    log_before, clicks_before = marks[PruneMark.Kind.POSTBACK_LOG], marks[PruneMark.Kind.CLICKS]
    reaches = [
        mark
        for mark in (log_before, clicks_before)
        if mark is not None and (period_start is None or period_start < mark)
    ]
    return {
        "raw_rows_pruned": bool(reaches),
        "postback_log_pruned_before": log_before,
        "clicks_pruned_before": clicks_before,
    }
