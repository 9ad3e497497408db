"""``manage.py partitions``: months ahead made once (idempotent, cron-safe), stray rows moved
out of the DEFAULT partition, and postbacks logged into their month's partition."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.factories import ClickFactory, PostbackLogFactory
from tests.markers import ON_POSTGRESQL, requires_postgresql
from tracking import partitions
from tracking.models import PostbackLog

pytestmark = pytest.mark.django_db

TABLE = "tracking_postbacklog"


def run(*args: str) -> str:
    out = StringIO()
    call_command("partitions", *args, stdout=out)
    return out.getvalue()


def where(log_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {TABLE} WHERE id = %s",  # noqa: S608
            [log_id],
        )
        return cursor.fetchone()[0]


def month_names() -> list[str]:
    return [p.name for p in partitions.partitions(TABLE) if not p.is_default]


@requires_postgresql
def test_it_makes_the_coming_months_once_and_changes_nothing_when_run_again():
    now = timezone.now()
    first = run("--months-ahead", "6")
    names = month_names()
    current = partitions.month_start(now)
    for n in range(7):
        assert partitions.partition_name(TABLE, partitions.add_months(current, n)) in names
    assert "Created" in first

    again = run("--months-ahead", "6")

    assert month_names() == names
    assert "Created" not in again
    assert "nothing to create" in again


@requires_postgresql
def test_rows_that_landed_in_the_default_partition_move_to_their_month():
    stray = PostbackLogFactory(created_at=timezone.now() - timedelta(days=500))
    assert where(stray.pk) == f"{TABLE}_default"
    before = PostbackLog.objects.values().get(pk=stray.pk)

    output = run()

    month = partitions.partition_name(TABLE, partitions.month_start(stray.created_at))
    assert f"Created {month}" in output
    assert where(stray.pk) == month
    assert PostbackLog.objects.values().get(pk=stray.pk) == before
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{TABLE}_default"')  # noqa: S608
        assert cursor.fetchone() == (0,)
    # The new month carries the parent's indexes under its own names, commented.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass",
            [month],
        )
        indexes = dict(cursor.fetchall())
    assert set(indexes) == {
        f"{month}_pkey",
        f"{month}_created",
        f"{month}_reason_created",
        f"{month}_transaction_id",
        f"{month}_offer_created",
    }
    assert all(indexes.values())


@requires_postgresql
def test_postbacks_log_into_their_months_partition(client):
    click = ClickFactory()
    accepted = client.get(
        "/postback",
        {"secure": click.offer.advertiser.postback_token, "transaction_id": click.transaction_id},
    )
    rejected = client.get("/postback", {"secure": "wrong", "transaction_id": click.transaction_id})

    assert (accepted.status_code, rejected.status_code) == (200, 403)
    current = partitions.partition_name(TABLE, partitions.month_start(timezone.now()))
    logs = PostbackLog.objects.order_by("id")
    assert [log.reason for log in logs] == ["accepted", "invalid_secure"]
    assert [where(log.pk) for log in logs] == [current, current]


@pytest.mark.skipif(ON_POSTGRESQL, reason="what SQLite answers")
def test_on_sqlite_there_is_nothing_to_partition():
    assert "nothing to do" in run()
