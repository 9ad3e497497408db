"""Monthly partitions of the tables that never stop growing, on PostgreSQL.

- ``tracking_postbacklog`` (migration 0007_postbacklog_partitions) is ``PARTITION BY RANGE
  (created_at)``: one partition per UTC month (``tracking_postbacklog_p2026_12`` holds
  ``2026-12-01 00:00 UTC <= created_at < 2027-01-01 00:00 UTC``) and a ``DEFAULT`` partition.
- ``tracking_delivery`` and ``tracking_deliveryattempt``, the publisher delivery log
  (migration 0012_delivery_partitions), by ``record_created_at``: the month of the record a
  delivery reports, which every delivery of a record shares, so the "once per postback and
  record" unique indexes, which must hold the partition key, still mean once per record
  (docs/scaling.md says why not the delivery's own time).

Inserts touch only their month's small indexes, and retention (tracking/retention.py)
detaches a whole month and drops it instead of deleting its rows one by one.

Partitions for the coming months are made ahead by ``manage.py partitions`` (cron or the
systemd timer in deploy/, and ``prune`` runs it too), never by a postback. Should that job
stop for longer than the months made ahead, postbacks still log: their rows land in the
DEFAULT partition (a safety net, normally empty), and the next run moves them into their
month's partition when it creates it.

How a partition is made, so the hot path never waits on it:

1. a plain table ``LIKE`` the parent, with a ``CHECK`` of its month's bounds;
2. rows of that month moved in from the DEFAULT partition, if any (or, in the migration,
   copied from the old table), before its indexes exist, so they are built in bulk;
3. the parent's primary key and indexes, each named ``<partition>_<what>`` after the
   parent's index (``tracking_postbacklog_p2026_12_created`` for ``postbacklog_created``)
   and commented like it;
4. ``ATTACH PARTITION``: the parent only takes a ``SHARE UPDATE EXCLUSIVE`` lock, which
   does not block inserts, and the ``CHECK`` spares it a scan of the new table.

``CREATE TABLE … PARTITION OF`` would do all of it in one statement, but it takes an
``ACCESS EXCLUSIVE`` lock on the parent, which makes every postback wait behind it.

Hand-written SQL for PostgreSQL only; only constants and names read from the catalog are
formatted into it. The migration imports these functions: keep them compatible with it.
"""

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

#: The tables partitioned by month, with their time column (the partition key).
PARTITIONED = {
    "tracking_postbacklog": "created_at",
    "tracking_delivery": "record_created_at",
    "tracking_deliveryattempt": "record_created_at",
}
#: What each holds, for the partitions' table comments.
LABELS = {
    "tracking_postbacklog": "Postback log",
    "tracking_delivery": "Publisher delivery log, by the reported record's month",
    "tracking_deliveryattempt": "Publisher delivery attempts, by the reported record's month",
}

MAX_NAME = 63  # PostgreSQL's identifier length
#: The longest a partition step waits for a lock. While DETACH waits for the parent's lock,
#: the postbacks that arrive queue behind it: a few hundred ms at most, then the step gives
#: up and is retried (the next run at the latest).
LOCK_TIMEOUT_MS = 500

_INDEX_HEAD_RE = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ USING ")


@dataclass(frozen=True)
class Partition:
    """One partition of a partitioned table: a month (``start <= t < end``) or the DEFAULT
    (``start`` and ``end`` None)."""

    name: str
    start: datetime | None
    end: datetime | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def month_start(moment: datetime) -> datetime:
    """The first instant of ``moment``'s UTC month."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    """The first instant of the UTC month ``count`` months after ``month``'s."""
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def months_between(first: datetime, last: datetime) -> list[datetime]:
    """Every month from ``first``'s to ``last``'s, both included."""
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'"


def is_partitioned(table: str) -> bool:
    """Whether ``table`` is a partitioned table (PostgreSQL after its migration)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions(table: str) -> list[Partition]:
    """``table``'s partitions, oldest month first, the DEFAULT partition last."""
    # The bounds come back as text in the session's DateStyle; PostgreSQL itself turns
    # them back into timestamps, so no date format is assumed here.
    with connection.cursor() as cursor:
        cursor.execute(
            r"""
            SELECT c.relname, b.bound = 'DEFAULT',
                   (regexp_match(b.bound, 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
                   (regexp_match(b.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            CROSS JOIN LATERAL pg_get_expr(c.relpartbound, c.oid) AS b(bound)
            WHERE i.inhparent = %s::regclass
            """,
            [table],
        )
        rows = cursor.fetchall()
    found = [
        Partition(name, None, None)
        if is_default
        else Partition(name, start.astimezone(UTC), end.astimezone(UTC))
        for name, is_default, start, end in rows
        if is_default or (start is not None and end is not None)
    ]
    return sorted(found, key=lambda p: (p.is_default, p.start or datetime.min.replace(tzinfo=UTC)))


def default_partition(table: str) -> str | None:
    """The name of ``table``'s DEFAULT partition (None: it has none)."""
    return next((p.name for p in partitions(table) if p.is_default), None)


def _columns(cursor: CursorWrapper, table: str) -> str:
    cursor.execute(
        """
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
        """,
        [table],
    )
    return cursor.fetchone()[0]


def _child_name(table: str, partition: str, parent_index: str) -> str:
    """``tracking_postbacklog_p2026_12_created`` for the parent's ``postbacklog_created``."""
    what = parent_index
    for prefix in (f"{table}_", f"{table.split('_', 1)[-1]}_"):
        if what.startswith(prefix):
            what = what[len(prefix) :]
            break
    return f"{partition}_{what}"[:MAX_NAME]


def _add_indexes(cursor: CursorWrapper, table: str, partition: str) -> None:
    """The parent's primary key and indexes on ``partition``, named after the parent's and
    with their comments, so ATTACH adopts them instead of building unnamed copies."""
    cursor.execute(
        """
        SELECT idx.relname, pg_get_indexdef(i.indexrelid),
               pg_get_constraintdef(con.oid), obj_description(i.indexrelid, 'pg_class')
        FROM pg_index i
        JOIN pg_class idx ON idx.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
        WHERE i.indrelid = %s::regclass
        ORDER BY idx.relname
        """,
        [table],
    )
    for parent_index, definition, constraint, comment in cursor.fetchall():
        name = _child_name(table, partition, parent_index)
        if constraint:
            cursor.execute(f'ALTER TABLE "{partition}" ADD CONSTRAINT "{name}" {constraint}')
        else:
            body = _INDEX_HEAD_RE.sub("", definition)
            unique = "UNIQUE " if definition.startswith("CREATE UNIQUE") else ""
            cursor.execute(f'CREATE {unique}INDEX "{name}" ON "{partition}" USING {body}')
        if comment:
            cursor.execute(f'COMMENT ON INDEX "{name}" IS %s', [comment])


def create_partition(
    cursor: CursorWrapper,
    *,
    table: str,
    month: datetime | None,
    copy_from: str | None = None,
) -> str:
    """Make and attach ``table``'s partition for ``month`` (None: the DEFAULT partition),
    moving in its month's rows from the DEFAULT partition (and ``copy_from``, a table with
    the same columns, in the migration). Call inside a transaction; returns its name."""
    column = PARTITIONED[table]
    columns = _columns(cursor, table)
    default = default_partition(table)
    if month is None:
        name, bounds, where = default_name(table), "DEFAULT", "TRUE"
    else:
        start, end = month, add_months(month, 1)
        name = partition_name(table, month)
        bounds = f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
        where = f"{column} >= {_literal(start)} AND {column} < {_literal(end)}"
    cursor.execute(
        f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        "INCLUDING STORAGE)"
    )
    if month is not None:
        # Proves the bounds to ATTACH, which then need not scan the table.
        cursor.execute(
            f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_bounds" '
            f"CHECK ({column} IS NOT NULL AND {where})"
        )
    if copy_from is not None:
        cursor.execute(
            f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "{copy_from}" WHERE {where}'  # noqa: S608
        )
    if default is not None and month is not None:
        # The rows logged while this month had no partition. Locked first, so none arrives
        # between the move and ATTACH's check that the DEFAULT holds none of this month.
        cursor.execute(f'LOCK TABLE "{table}" IN SHARE UPDATE EXCLUSIVE MODE')
        cursor.execute(f'LOCK TABLE "{default}" IN ACCESS EXCLUSIVE MODE')
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{default}" WHERE {where} RETURNING {columns}) '  # noqa: S608
            f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved'
        )
    _add_indexes(cursor, table, name)
    what = "rows of no other partition" if month is None else f"rows of {month:%Y-%m} (UTC)"
    cursor.execute(
        f'COMMENT ON TABLE "{name}" IS %s',
        [f"{LABELS[table]}: {what}. Made by tracking/partitions.py, dropped whole by prune."],
    )
    cursor.execute(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" {bounds}')
    if month is not None:
        cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_bounds"')
    return name


def default_months(cursor: CursorWrapper, table: str) -> list[datetime]:
    """The months of the rows in ``table``'s DEFAULT partition (normally none)."""
    default = default_partition(table)
    if default is None:
        return []
    column = PARTITIONED[table]
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', {column}, 'UTC') FROM \"{default}\""  # noqa: S608
    )
    return sorted(month_start(month) for (month,) in cursor.fetchall())


def missing_months(existing: Iterable[Partition], wanted: Iterable[datetime]) -> list[datetime]:
    """The months of ``wanted`` no existing partition covers."""
    ranges = [(p.start, p.end) for p in existing if not p.is_default]
    return sorted(
        {
            month
            for month in wanted
            if not any(start <= month < end for start, end in ranges)  # type: ignore[operator]
        }
    )


def ensure_partitions(
    *, now: datetime, months_ahead: int, lock_timeout_ms: int = LOCK_TIMEOUT_MS
) -> list[str]:
    """Make the partitions of every partitioned table from ``now``'s month to
    ``months_ahead`` months after it, and for any month with rows in the DEFAULT
    partition; return the names made. Idempotent: a month that has a partition is left
    alone. Each partition is its own transaction; a lock not granted within
    ``lock_timeout_ms`` makes it fail (the next run tries again) rather than queue the
    postbacks behind it."""
    created: list[str] = []
    for table in PARTITIONED:
        if not is_partitioned(table):
            continue
        first = month_start(now)
        wanted = [add_months(first, n) for n in range(months_ahead + 1)]
        with connection.cursor() as cursor:
            wanted += default_months(cursor, table)
        for month in missing_months(partitions(table), wanted):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                created.append(create_partition(cursor, table=table, month=month))
    return created


class PartitionInUse(Exception):
    """The partition holds rows its ``keep_if`` condition keeps: it was not dropped."""


@dataclass(frozen=True)
class Dropped:
    """How long dropping a partition took: ``detach`` is the time the parent was locked
    (what postbacks could wait for), ``drop`` removing the detached table's files (which
    locks nothing postbacks use)."""

    detach: float
    drop: float


def drop_partition(
    table: str, name: str, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS, keep_if: str | None = None
) -> Dropped:
    """Remove one partition and all its rows, in two steps.

    1. ``DETACH PARTITION``: a catalog change, under a short ``ACCESS EXCLUSIVE`` lock on
       the parent (``… CONCURRENTLY`` is refused while a DEFAULT partition exists), bounded
       by ``lock_timeout_ms`` so inserts never queue behind it for longer.
    2. ``DROP TABLE`` of the now separate table. Measured: freeing a month's 1.3 GB of files
       took 1–1.6 s on the development machines' disks; a ``DROP TABLE`` of the partition
       itself would hold the parent's lock, and every postback, for all of it.

    Should the process stop between the two, ``detached_leftovers`` finds the table for the
    next run. ``keep_if`` (an SQL condition, a constant): if any row of the partition meets
    it, checked once detached, under the lock no insert gets past, the detach is undone and
    ``PartitionInUse`` raised."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"')
        if keep_if is not None:
            cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{name}" WHERE {keep_if})')  # noqa: S608
            if cursor.fetchone()[0]:
                raise PartitionInUse(name)
    detached = time.perf_counter()
    drop_detached(name, lock_timeout_ms=lock_timeout_ms)
    return Dropped(detached - started, time.perf_counter() - detached)


def drop_detached(name: str, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        cursor.execute(f'DROP TABLE "{name}"')


def detached_leftovers(table: str) -> list[Partition]:
    """Tables named as ``table``'s monthly partitions that are no longer attached: left by
    a prune stopped between detaching a month and dropping it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relname ~ %s",
            [f"^{table}_p[0-9]{{4}}_[0-9]{{2}}$"],
        )
        names = [name for (name,) in cursor.fetchall()]
    leftovers = []
    for name in names:
        year, month = int(name[-7:-3]), int(name[-2:])
        start = datetime(year, month, 1, tzinfo=UTC)
        leftovers.append(Partition(name, start, add_months(start, 1)))
    return sorted(leftovers, key=lambda p: p.start)


def size_and_estimate(name: str) -> tuple[int, int | None]:
    """A partition's bytes on disk (with its indexes) and the planner's row estimate
    (None before it was first analyzed); counting the rows of a month could take minutes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(oid), reltuples::bigint FROM pg_class "
            "WHERE oid = %s::regclass",
            [name],
        )
        size, estimate = cursor.fetchone()
    return size, (estimate if estimate >= 0 else None)


# --- Turning a plain table into a partitioned one and back (the migrations) ------------------


def _rows(cursor: CursorWrapper, sql: str, params: list | None = None) -> list[tuple]:
    cursor.execute(sql, params or [])
    return cursor.fetchall()


def refuse_foreign_keys(cursor: CursorWrapper, table: str) -> None:
    """Stop with a clear message if a foreign key references ``table`` or leaves it.

    - A key on ``id`` alone cannot reference a partitioned table (its unique keys hold the
      partition key).
    - A partition with keys to other tables cannot be dropped without an ``ACCESS
      EXCLUSIVE`` lock on each of them (their triggers go with it), which waits behind any
      open read of, say, the conversions, while their inserts queue behind it; attaching
      one locks their writers out. Monthly tables keep their links without a constraint.
    """
    keys = _rows(
        cursor,
        "SELECT conname, conrelid::regclass::text FROM pg_constraint "
        "WHERE (confrelid = %s::regclass OR conrelid = %s::regclass) AND contype = 'f'",
        [table, table],
    )
    if keys:
        names = ", ".join(f"{name} on {other}" for name, other in keys)
        raise RuntimeError(
            f"{table} cannot be partitioned while it has foreign keys ({names}): a key on id "
            "alone cannot reference a partitioned table, and dropping a month with keys would "
            "lock the tables they reference. Drop them (db_constraint=False) first."
        )


def _move_aside(cursor: CursorWrapper, table: str, aside: str) -> list[str]:
    """Rename ``table`` to ``aside`` with its indexes, primary key and identity sequence,
    freeing their names; return the indexes' definitions (under their original names)."""
    indexes = _rows(
        cursor,
        """
        SELECT idx.relname, pg_get_indexdef(i.indexrelid), con.conname
        FROM pg_index i JOIN pg_class idx ON idx.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
        WHERE i.indrelid = %s::regclass ORDER BY idx.relname
        """,
        [table],
    )
    ((sequence,),) = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
    cursor.execute(f'ALTER SEQUENCE {sequence} RENAME TO "{aside}_id_seq"')
    definitions = []
    for name, definition, constraint in indexes:
        if constraint:  # the primary key
            cursor.execute(
                f'ALTER TABLE "{aside}" RENAME CONSTRAINT "{constraint}" TO "{aside}_pkey"'
            )
        else:
            definitions.append(definition.replace(" ON ONLY ", " ON "))
            cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:55]}_aside"')
    return definitions


def _create_like(
    cursor: CursorWrapper, table: str, aside: str, *, partition_by: str | None, primary_key: str
) -> None:
    by = f" PARTITION BY RANGE ({partition_by})" if partition_by else ""
    cursor.execute(
        f'CREATE TABLE "{table}" (LIKE "{aside}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        f"INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS){by}"
    )
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" {primary_key}')
    # The identity goes on from the old table's last ID.
    ((last, called),) = _rows(cursor, f'SELECT last_value, is_called FROM "{aside}_id_seq"')  # noqa: S608
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, last, called])


def _add_parent_indexes(cursor: CursorWrapper, definitions: list[str], comments: dict) -> None:
    """The moved-aside table's indexes on the new table (on a partitioned one: before any
    partition, which ATTACH then gives them), with their comments."""
    for definition in definitions:
        cursor.execute(definition)  # on the new table, under its own name
    for name, comment in comments.items():
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            cursor.execute(f'COMMENT ON INDEX "{name}" IS %s', [comment])


def partition_table(
    cursor: CursorWrapper, table: str, *, now: datetime, months_ahead: int, comments: dict
) -> None:
    """Rebuild ``table`` (in ``PARTITIONED``) as ``PARTITION BY RANGE`` on its time column:
    its rows copied month by month into a partition each (from the oldest row's month to
    ``months_ahead`` months after ``now``'s, plus the DEFAULT partition), with the same
    columns, check constraints, identity (going on from the old table's last ID) and every
    index under its own name, commented as ``comments`` says (index name → what it
    serves); no foreign key may reference it or leave it (``refuse_foreign_keys``). The
    primary key becomes ``(id, <time column>)``, since a partitioned table's unique keys
    must hold its partition key; the ORM keeps ``id`` (one identity sequence writes every
    ID). Holds the table locked until the migration commits."""
    column = PARTITIONED[table]
    aside = f"{table}_unpartitioned"
    refuse_foreign_keys(cursor, table)
    definitions = _move_aside(cursor, table, aside)
    _create_like(
        cursor, table, aside, partition_by=column, primary_key=f"PRIMARY KEY (id, {column})"
    )
    _add_parent_indexes(cursor, definitions, comments)
    ((oldest,),) = _rows(cursor, f'SELECT min({column}) FROM "{aside}"')  # noqa: S608
    first = month_start(min(oldest or now, now))
    last = add_months(month_start(now), months_ahead)
    for month in months_between(first, last):
        create_partition(cursor, table=table, month=month, copy_from=aside)
    # Rows from beyond the last month made (clocks far ahead) are kept too.
    create_partition(cursor, table=table, month=None)
    cursor.execute(
        f'INSERT INTO "{table}" SELECT * FROM "{aside}" WHERE {column} >= %s',  # noqa: S608
        [add_months(last, 1)],
    )
    ((kept,), (copied,)) = _rows(
        cursor,
        f'SELECT count(*) FROM "{aside}" UNION ALL SELECT count(*) FROM "{table}"',  # noqa: S608
    )
    if kept != copied:
        raise RuntimeError(f"{table}: {kept} rows, {copied} copied: nothing was changed")
    cursor.execute(f'DROP TABLE "{aside}"')
    cursor.execute(f'ANALYZE "{table}"')


def unpartition_table(cursor: CursorWrapper, table: str, *, comments: dict) -> None:
    """``partition_table`` undone: one plain table again, primary key ``id``."""
    aside = f"{table}_unpartitioned"
    definitions = _move_aside(cursor, table, aside)
    _create_like(cursor, table, aside, partition_by=None, primary_key="PRIMARY KEY (id)")
    cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{aside}"')  # noqa: S608
    _add_parent_indexes(cursor, definitions, comments)
    cursor.execute(f'DROP TABLE "{aside}"')  # with its partitions
