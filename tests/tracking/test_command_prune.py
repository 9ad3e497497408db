"""``manage.py prune``: a dry run changes nothing; ``--apply`` removes exactly what the
retention settings say (whole log months, unconverted clicks) and nothing else, on
PostgreSQL (dropped partitions) and SQLite (batched deletes); reports still add up."""

import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from offers.models import Offer
from tests.conftest import admin_client_for
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
    analyst,
)
from tests.markers import ON_POSTGRESQL, requires_postgresql
from tracking import partitions
from tracking.models import Click, Conversion, EventRecord, PostbackLog, PruneMark
from tracking.retention import Pace, prune

pytestmark = pytest.mark.django_db

LOG_DAYS, CLICK_DAYS = 60, 40
RETENTION = override_settings(POSTBACK_LOG_RETENTION_DAYS=LOG_DAYS, CLICK_RETENTION_DAYS=CLICK_DAYS)
#: Ages (days) of the rows made: a log row is gone once its whole UTC month is older than
#: LOG_DAYS (so rows from 92 days on always are, rows of 10 days never); clicks after CLICK_DAYS.
LOG_AGES = [1, 10, 45, 75, 92, 130, 200, 400]
CLICK_AGES = [2, 20, 29, 31, 45, 200]


def run(*args: str) -> str:
    out = StringIO()
    call_command("prune", *args, stdout=out, stderr=out)
    return out.getvalue()


def log_cutoff(now):  # noqa: ANN001, ANN201
    """The rule in the settings' words: the start of the UTC month holding now - LOG_DAYS."""
    return partitions.month_start(now - timedelta(days=LOG_DAYS))


def snapshot() -> dict[str, set]:
    return {
        "log": set(PostbackLog.objects.values_list("id", flat=True)),
        "clicks": set(Click.objects.values_list("id", flat=True)),
        "conversions": set(Conversion.objects.values_list("id", "revenue", "payout")),
        "event_records": set(EventRecord.objects.values_list("id", "revenue", "payout")),
    }


def partition_names() -> list[str]:
    if not partitions.is_partitioned("tracking_postbacklog"):
        return []
    return [p.name for p in partitions.partitions("tracking_postbacklog")]


@pytest.fixture
def history():
    """Months of traffic: log rows and clicks of every age, some clicks converted (with
    event records), one unconverted old click that log rows still point at. On PostgreSQL
    the log's months get their partitions first, as the nightly run would have made them."""
    now = timezone.now()
    offer = OfferFactory()
    event = EventFactory(offer=offer)
    ago = {}
    for age in CLICK_AGES:
        ago[age] = ClickFactory(offer=offer, created_at=now - timedelta(days=age, hours=1))
    converted = []
    for age in (45, 200, 400):
        conversion = ConversionFactory(
            click__offer=offer,
            click__created_at=now - timedelta(days=age),
            created_at=now - timedelta(days=age - 1),
            revenue=Decimal("7.00"),
            payout=Decimal("4.00"),
        )
        EventRecordFactory(
            conversion=conversion,
            event=event,
            created_at=now - timedelta(days=age - 2),
            revenue=Decimal("1.50"),
            payout=Decimal("0.50"),
        )
        converted.append(conversion.click)
    logs = {
        age: PostbackLogFactory(created_at=now - timedelta(days=age), offer_id=offer.pk)
        for age in LOG_AGES
    }
    # Rejected postbacks for the old unconverted click: they do not keep it.
    PostbackLogFactory(created_at=now - timedelta(days=10), click_id=ago[200].pk, offer_id=offer.pk)
    # Windows shorter than CLICK_DAYS, so the setting decides (a longer window would keep
    # the clicks: test_a_click_within_the_longest_conversion_window_is_kept…).
    if any(f.name == "conversion_window_days" for f in Offer._meta.fields):
        Offer.objects.update(conversion_window_days=1)
    if ON_POSTGRESQL:
        call_command("partitions", stdout=StringIO())
    return {"now": now, "offer": offer, "clicks": ago, "converted": converted, "logs": logs}


def report(client, offer, now):  # noqa: ANN001, ANN201
    response = client.get(
        "/api/v1/reports/",
        {
            "group_by": "day,event",
            "offer": offer.pk,
            "since": (now - timedelta(days=500)).date().isoformat(),
            "until": now.date().isoformat(),
        },
    )
    assert response.status_code == 200, response.content
    return response.json()


@RETENTION
def test_a_dry_run_prints_what_it_would_remove_and_removes_nothing(history):
    before, names = snapshot(), partition_names()

    output = run()

    assert "Dry run: nothing is removed" in output
    assert snapshot() == before
    assert partition_names() == names
    assert not PruneMark.objects.exists()
    cutoff = log_cutoff(history["now"])
    expired = PostbackLog.objects.filter(created_at__lt=cutoff).count()
    unconverted = sum(1 for age in CLICK_AGES if age > CLICK_DAYS)
    assert f"{unconverted:,} unconverted clicks" in output
    assert f"rows created before {cutoff:%Y-%m-%d} 00:00 UTC are past retention" in output
    if ON_POSTGRESQL:
        dropped = [
            p.name
            for p in partitions.partitions("tracking_postbacklog")
            if p.end and p.end <= cutoff
        ]
        assert dropped
        for name in dropped:
            assert f"would drop partition {name}" in output
        assert "would delete 0 rows one batch at a time" in output
    else:
        assert f"would delete {expired:,} rows one batch at a time" in output


@RETENTION
def test_apply_removes_exactly_what_the_settings_say_and_nothing_else(history):
    now = history["now"]
    before = snapshot()
    cutoff = log_cutoff(now)
    expired_log = set(
        PostbackLog.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)
    )
    expired_clicks = {click.pk for age, click in history["clicks"].items() if age > CLICK_DAYS}
    assert expired_log and expired_log != before["log"]

    output = run("--apply", "--batch-size", "2")

    after = snapshot()
    assert after["log"] == before["log"] - expired_log
    assert after["clicks"] == before["clicks"] - expired_clicks
    # Records, and the clicks they reference, however old, are all still there.
    assert after["conversions"] == before["conversions"]
    assert after["event_records"] == before["event_records"]
    assert {click.pk for click in history["converted"]} <= after["clicks"]
    assert "Pruned in" in output
    marks = {mark.kind: mark.before for mark in PruneMark.objects.all()}
    assert marks[PruneMark.Kind.POSTBACK_LOG] == cutoff
    assert (
        now - timedelta(days=CLICK_DAYS)
        <= marks[PruneMark.Kind.CLICKS]
        <= timezone.now() - timedelta(days=CLICK_DAYS)
    )
    if ON_POSTGRESQL:
        remaining = partitions.partitions("tracking_postbacklog")
        assert all(p.is_default or p.end > cutoff for p in remaining)
        assert "dropped partition" in output

    # A second run finds nothing more to remove.
    assert snapshot() == after
    run("--apply")
    assert snapshot() == after


@RETENTION
def test_reports_over_pruned_periods_still_add_up_and_say_so(history, manager_client):
    offer, now = history["offer"], history["now"]
    before = report(manager_client, offer, now)
    assert before["retention"] == {
        "raw_rows_pruned": False,
        "postback_log_pruned_before": None,
        "clicks_pruned_before": None,
    }

    run("--apply")

    after = report(manager_client, offer, now)
    assert after["results"] == before["results"]
    conversions = sum(row["conversions"] for row in after["results"])
    events = sum(row["events"] for row in after["results"])
    revenue = sum(Decimal(row["revenue"]) for row in after["results"])
    assert (conversions, events, revenue) == (3, 3, Decimal("25.50"))
    assert after["retention"]["raw_rows_pruned"] is True
    assert after["retention"]["postback_log_pruned_before"].startswith(
        f"{log_cutoff(now):%Y-%m-%d}"
    )
    assert after["retention"]["clicks_pruned_before"] is not None
    # A period after what was removed says nothing was.
    recent = manager_client.get(
        "/api/v1/reports/", {"since": (now - timedelta(days=5)).date().isoformat()}
    ).json()
    assert recent["retention"]["raw_rows_pruned"] is False

    page = admin_client_for(analyst()).get(
        "/admin/tracking/eventrecord/reports/",
        {"since": (now - timedelta(days=300)).date().isoformat(), "until": now.date().isoformat()},
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="ct-retention-note"' in text
    assert f"postback log rows before {log_cutoff(now):%Y-%m-%d}" in text
    assert "clicks that never converted" in text


@RETENTION
def test_a_log_row_whose_click_was_pruned_still_shows_in_the_admin_and_the_api(
    history, superuser_admin, manager_client
):
    run("--apply")
    orphan = PostbackLog.objects.get(click_id=history["clicks"][200].pk)
    assert not Click.objects.filter(pk=orphan.click_id).exists()

    assert (
        superuser_admin.get(f"/admin/tracking/postbacklog/{orphan.pk}/change/").status_code == 200
    )
    assert superuser_admin.get("/admin/tracking/postbacklog/").status_code == 200
    response = manager_client.get("/api/v1/postbacks/")
    assert response.status_code == 200
    assert orphan.transaction_id in response.content.decode()


def test_bad_options_are_refused():
    with pytest.raises(Exception, match="must be positive"):
        run("--batch-size", "0")
    with pytest.raises(Exception, match="must be 0 or more"):
        run("--pause-factor", "-1")


def test_the_rest_after_a_batch_is_the_pause_plus_the_factor_times_the_batch():
    # tracking/retention.py Pace: with factor 2, a batch that took 50 ms is followed by
    # 100 ms of rest, so a prune works a third of the time whatever the load.
    pace = Pace(pause=0.02, factor=2)
    batch_started = time.monotonic() - 0.05

    pace.rest(batch_started)

    assert time.monotonic() - batch_started >= 0.05 + 0.02 + 2 * 0.05
    rested = time.monotonic()
    Pace().rest(time.monotonic() - 1)
    assert time.monotonic() - rested < 0.05


@requires_postgresql
@RETENTION
def test_rows_in_the_default_partition_past_retention_are_deleted_row_by_row():
    now = timezone.now()
    old = PostbackLogFactory(created_at=now - timedelta(days=400))
    recent = PostbackLogFactory(created_at=now - timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM tracking_postbacklog WHERE id = %s", [old.pk]
        )
        assert cursor.fetchone() == ("tracking_postbacklog_default",)

    result = prune(now=now, batch_size=10)

    assert list(PostbackLog.objects.values_list("id", flat=True)) == [recent.pk]
    assert result.log_rows == 1
    # The recent row stays, in its month's partition (made by the run if it was missing).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM tracking_postbacklog WHERE id = %s", [recent.pk]
        )
        (where,) = cursor.fetchone()
    assert where == partitions.partition_name(
        "tracking_postbacklog", partitions.month_start(recent.created_at)
    )


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_click_being_converted_right_now_is_skipped_not_waited_for():
    """A conversion's insert holds a key-share lock on its click until it commits; prune
    skips that click (SKIP LOCKED) instead of queueing behind the postback."""
    import psycopg

    from tests.servers import postgres_url

    now = timezone.now()
    busy, idle = (ClickFactory(created_at=now - timedelta(days=400)) for _ in range(2))
    with psycopg.connect(postgres_url()) as other:
        other.execute("SELECT id FROM tracking_click WHERE id = %s FOR KEY SHARE", [busy.pk])
        started = timezone.now()
        with override_settings(CLICK_RETENTION_DAYS=CLICK_DAYS):
            result = prune(now=now, lock_timeout_ms=5000)
        waited = timezone.now() - started
        other.rollback()

    assert result.clicks == 1
    assert list(Click.objects.values_list("id", flat=True)) == [busy.pk]
    assert not Click.objects.filter(pk=idle.pk).exists()
    assert waited < timedelta(seconds=4)


@RETENTION
def test_click_retention_default_is_the_conversion_window_plus_30_days():
    from django.conf import settings as django_settings

    from config.settings import base

    assert base.CLICK_RETENTION_DAYS == base.CONVERSION_WINDOW_DAYS_DEFAULT + 30 == 120
    assert base.POSTBACK_LOG_RETENTION_DAYS == 180
    assert django_settings.CLICK_RETENTION_DAYS == CLICK_DAYS


@pytest.mark.skipif(
    not any(f.name == "conversion_window_days" for f in OfferFactory._meta.model._meta.fields),
    reason="offers have no conversion_window_days yet (another issue adds it)",
)
@RETENTION
def test_a_click_within_the_longest_conversion_window_is_kept_whatever_the_setting():
    now = timezone.now()
    offer = OfferFactory(conversion_window_days=200)
    click = ClickFactory(offer=offer, created_at=now - timedelta(days=150))

    run("--apply")

    assert Click.objects.filter(pk=click.pk).exists()


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_month_whose_drop_cannot_get_its_lock_is_left_whole_for_the_next_run():
    """A long read of the log (an export) holds a lock the drop needs: the drop gives up
    after its lock timeout instead of making postbacks queue, and nothing of that month is
    deleted row by row meanwhile."""
    import psycopg

    from tests.servers import postgres_url

    now = timezone.now()
    old = PostbackLogFactory(created_at=now - timedelta(days=400))
    call_command("partitions", stdout=StringIO())
    month = partitions.month_start(old.created_at)
    name = partitions.partition_name("tracking_postbacklog", month)
    with psycopg.connect(postgres_url()) as other:
        other.execute("SELECT count(*) FROM tracking_postbacklog")  # holds its lock till rollback
        with RETENTION:
            result = prune(now=now, lock_timeout_ms=100, drop_attempts=2)
        other.rollback()

    assert result.skipped_partitions == [name]
    assert result.dropped_partitions == []
    assert PostbackLog.objects.filter(pk=old.pk).exists()
    mark = PruneMark.objects.get(kind=PruneMark.Kind.POSTBACK_LOG)
    assert mark.before == month  # what is gone is what precedes the month left behind

    # The next run, with nothing in its way, drops it.
    with RETENTION:
        again = prune(now=now)
    assert name in again.dropped_partitions
    assert not PostbackLog.objects.filter(pk=old.pk).exists()


@requires_postgresql
@RETENTION
def test_a_month_detached_by_a_run_that_stopped_before_dropping_it_is_dropped_next_time():
    now = timezone.now()
    old = PostbackLogFactory(created_at=now - timedelta(days=400))
    call_command("partitions", stdout=StringIO())
    name = partitions.partition_name("tracking_postbacklog", partitions.month_start(old.created_at))
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE tracking_postbacklog DETACH PARTITION "{name}"')
    assert [p.name for p in partitions.detached_leftovers("tracking_postbacklog")] == [name]

    output = run("--apply")

    assert f"dropped {name}, detached by an earlier run" in output
    assert partitions.detached_leftovers("tracking_postbacklog") == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        assert cursor.fetchone() == (None,)
