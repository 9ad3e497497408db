"""Migration 0007 on a database with data in it (PostgreSQL): the log becomes monthly
partitions, every row lands in its month, IDs go on, and it migrates back."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.markers import requires_postgresql
from tests.migrations import latest, migrate
from tracking import partitions
from tracking.models import PostbackLog

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgresql]

TARGET = ("tracking", "0007_postbacklog_partitions")
TABLE = "tracking_postbacklog"


def previous() -> tuple[str, str]:
    """The tracking migration 0007 follows (whichever it is after merges)."""
    graph = MigrationExecutor(connection).loader.graph
    (parent,) = [node.key for node in graph.node_map[TARGET].parents if node.key[0] == "tracking"]
    return parent


def rows_by_partition() -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, tableoid::regclass::text FROM {TABLE}")  # noqa: S608
        return dict(cursor.fetchall())


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        return cursor.fetchone()[0]


def primary_key() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'p'",
            [TABLE],
        )
        return " ".join(cursor.fetchone())


def index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


MODEL_INDEXES = {
    "tracking_postbacklog_pkey",
    "postbacklog_created",
    "postbacklog_reason_created",
    "postbacklog_transaction_id",
    "postbacklog_offer_created",
}


@pytest.fixture
def unpartitioned():
    """The database as it was before 0007; brought back to the latest state afterwards."""
    before = previous()
    executor = migrate(before)
    yield executor.loader.project_state([before]).apps
    migrate(*latest())


def test_existing_rows_move_into_their_months_and_new_ones_land_in_theirs(unpartitioned):
    assert relkind() == "r"
    old_log = unpartitioned.get_model("tracking", "PostbackLog")
    now = timezone.now()
    moments = [
        datetime(2025, 10, 15, 8, tzinfo=UTC),
        datetime(2025, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),  # last instant of a month
        datetime(2025, 12, 1, tzinfo=UTC),  # first instant of the next
        datetime(2026, 2, 3, 12, tzinfo=UTC),
        now - timedelta(minutes=1),
    ]
    old = [
        old_log.objects.create(
            created_at=moment,
            method="GET",
            params={"transaction_id": f"t{n}"},
            status_code=404,
            reason="unknown_transaction",
            message="No click has this transaction_id.",
            transaction_id=f"t{n}",
        )
        for n, moment in enumerate(moments)
    ]

    migrate(TARGET)

    assert relkind() == "p"
    assert primary_key() == "tracking_postbacklog_pkey PRIMARY KEY (id, created_at)"
    assert index_names(TABLE) == MODEL_INDEXES
    placed = rows_by_partition()
    assert placed == {
        row.pk: partitions.partition_name(TABLE, partitions.month_start(moment))
        for row, moment in zip(old, moments, strict=True)
    }
    kept = {row.pk: row for row in PostbackLog.objects.all()}
    for row, moment in zip(old, moments, strict=True):
        assert kept[row.pk].created_at == moment
        assert kept[row.pk].params == row.params
        assert kept[row.pk].message == row.message
    # A partition for every month from the oldest row's to three months ahead, no gap, and
    # the DEFAULT partition; each with the parent's indexes under its own names.
    made = partitions.partitions(TABLE)
    months = [p.start for p in made if not p.is_default]
    current = partitions.month_start(now)
    assert months == partitions.months_between(
        datetime(2025, 10, 1, tzinfo=UTC), partitions.add_months(current, 3)
    )
    assert made[-1].is_default
    october = partitions.partition_name(TABLE, datetime(2025, 10, 1, tzinfo=UTC))
    assert index_names(october) == {
        f"{october}_pkey",
        f"{october}_created",
        f"{october}_reason_created",
        f"{october}_transaction_id",
        f"{october}_offer_created",
    }

    # New rows: IDs go on from the old table's, and each lands in its month.
    new = PostbackLog.objects.create(
        method="GET", status_code=404, reason="unknown_transaction", transaction_id="new"
    )
    assert new.pk > max(row.pk for row in old)
    far = PostbackLog.objects.create(
        created_at=now + timedelta(days=800),
        method="GET",
        status_code=404,
        reason="unknown_transaction",
    )
    placed = rows_by_partition()
    assert placed[new.pk] == partitions.partition_name(TABLE, current)
    assert placed[far.pk] == "tracking_postbacklog_default"


def test_it_migrates_back_to_one_table_with_every_row(unpartitioned):
    old_log = unpartitioned.get_model("tracking", "PostbackLog")
    for n in range(3):
        old_log.objects.create(
            created_at=datetime(2026, 1 + 4 * n, 9, tzinfo=UTC),
            method="POST",
            status_code=403,
            reason="invalid_secure",
        )
    migrate(TARGET)
    PostbackLog.objects.create(method="GET", status_code=404, reason="unknown_transaction")

    migrate(previous())

    assert relkind() == "r"
    assert primary_key() == "tracking_postbacklog_pkey PRIMARY KEY (id)"
    assert index_names(TABLE) == MODEL_INDEXES
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT id) FROM {TABLE}")  # noqa: S608
        assert cursor.fetchone() == (4, 4)
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relname ~ '^tracking_postbacklog_(p[0-9]|default)'"
        )
        assert cursor.fetchone() == (0,)
