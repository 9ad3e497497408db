"""``manage.py prune`` and the publisher delivery log: deliveries (and their attempts) go by
the whole months of the records they report once past ``DELIVERY_RETENTION_DAYS``; a
delivery still to be sent is never removed; records stay. PostgreSQL drops monthly
partitions, SQLite deletes in batches: the same rows go either way."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Q
from django.test import override_settings
from django.utils import timezone

from offers.models import PublisherPostback
from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PublisherFactory,
)
from tests.markers import ON_POSTGRESQL, requires_postgresql
from tracking import partitions
from tracking.deliveries import (
    Attempted,
    attempts_record,
    deliveries_claim,
    deliveries_create,
    delivery_resend,
    offer_postbacks,
)
from tracking.models import Conversion, Delivery, DeliveryAttempt, EventRecord
from tracking.outbound import AttemptResult
from tracking.retention import prune

pytestmark = pytest.mark.django_db

DAYS = 60
RETENTION = override_settings(DELIVERY_RETENTION_DAYS=DAYS)
#: Ages (days) of the records reported: a record's deliveries are past retention once the
#: whole UTC month it was created in is older than DAYS (from 92 days on always, 10 never).
AGES = [1, 10, 45, 92, 130, 400]


def cutoff(now: datetime) -> datetime:
    """The rule in the setting's words: the start of the UTC month holding now - DAYS."""
    return partitions.month_start(now - timedelta(days=DAYS))


def run(*args: str) -> str:
    out = StringIO()
    call_command("prune", *args, stdout=out, stderr=out)
    return out.getvalue()


def send_all(now: datetime, code: int = 200) -> None:
    """The worker's bookkeeping for every due delivery, answered ``code`` (no request: what
    is tested here is what the log holds, not the sending)."""
    claimed = deliveries_claim(limit=1000, now=now)
    attempts_record(
        attempts=[
            Attempted(c, AttemptResult(status_code=code, duration_ms=5), now) for c in claimed
        ],
        now=now,
    )


@pytest.fixture
def history():
    """Records of every age (a conversion and an event record each, of one publisher), each
    with its publisher delivery sent and one attempt; on PostgreSQL the delivery log's
    months made as the nightly run would have."""
    now = timezone.now()
    offer = OfferFactory()
    event = EventFactory(offer=offer)
    publisher = PublisherFactory()
    for trigger in ("conversion", "event"):
        PublisherPostback.objects.create(
            publisher=publisher, trigger=trigger, url="http://publisher.example/pb?d={delivery_id}"
        )
    records = {}
    for age in AGES:
        made = now - timedelta(days=age, hours=1)
        conversion = ConversionFactory(
            click__offer=offer, click__publisher=publisher, click__created_at=made, created_at=made
        )
        record = EventRecordFactory(conversion=conversion, event=event, created_at=made)
        records[age] = (conversion, record)
        for reported in (conversion, record):
            assert len(deliveries_create(record=reported, now=now)) == 1
    send_all(now)
    if ON_POSTGRESQL:
        call_command("partitions", stdout=StringIO())
    return {"now": now, "records": records}


def kept_ages(history: dict) -> set[int]:
    """The ages whose records still have both their deliveries, each with its attempt."""
    ages = set()
    for age, (conversion, record) in history["records"].items():
        found = Delivery.objects.filter(conversion=conversion).count() + (
            Delivery.objects.filter(event_record=record).count()
        )
        attempts = DeliveryAttempt.objects.filter(
            delivery__in=Delivery.objects.filter(Q(conversion=conversion) | Q(event_record=record))
        ).count()
        assert found == attempts, (age, found, attempts)
        assert found in (0, 2), (age, found)
        if found:
            ages.add(age)
    return ages


def expected_kept(now: datetime) -> set[int]:
    return {age for age in AGES if now - timedelta(days=age, hours=1) >= cutoff(now)}


@RETENTION
def test_apply_removes_the_deliveries_of_records_past_retention_and_nothing_else(history):
    now = history["now"]
    records = (Conversion.objects.count(), EventRecord.objects.count())

    output = run("--apply")

    assert kept_ages(history) == expected_kept(now)
    assert {92, 130, 400}.isdisjoint(kept_ages(history)) and {1, 10} <= kept_ages(history)
    # Records (and their clicks) are never removed with their deliveries.
    assert (Conversion.objects.count(), EventRecord.objects.count()) == records
    gone = 2 * len(set(AGES) - expected_kept(now))
    if ON_POSTGRESQL:
        names = [p.name for p in partitions.partitions("tracking_delivery")]
        assert all(
            p.start >= cutoff(now)
            for p in partitions.partitions("tracking_delivery")
            if not p.is_default
        ), names
        assert all(
            p.start >= cutoff(now)
            for p in partitions.partitions("tracking_deliveryattempt")
            if not p.is_default
        )
        assert "delivery log partitions dropped" in output
    else:
        assert f"{gone:,} deliveries" in output


@RETENTION
def test_a_dry_run_lists_the_delivery_months_and_removes_nothing(history):
    before = (Delivery.objects.count(), DeliveryAttempt.objects.count())

    output = run()

    assert (Delivery.objects.count(), DeliveryAttempt.objects.count()) == before
    assert (
        f"deliveries of records created before {cutoff(history['now']):%Y-%m-%d} 00:00 UTC"
        in output
    )
    if ON_POSTGRESQL:
        old = partitions.partition_name(
            "tracking_delivery",
            partitions.month_start(history["now"] - timedelta(days=400, hours=1)),
        )
        assert f"would drop partition {old} and its month of attempts" in output
    else:
        gone = 2 * len(set(AGES) - expected_kept(history["now"]))
        assert f"would delete {gone:,} deliveries" in output


@RETENTION
def test_a_delivery_still_to_be_sent_is_kept_with_its_month_until_it_ends(history):
    now = history["now"]
    conversion, _ = history["records"][400]
    delivery = Delivery.objects.get(conversion=conversion)
    delivery_resend(delivery_id=delivery.pk, now=now)  # queued again: the worker must send it

    result = prune(now=now)

    assert Delivery.objects.filter(pk=delivery.pk, outcome="queued").exists()
    if ON_POSTGRESQL:
        month = partitions.partition_name(
            "tracking_delivery", partitions.month_start(conversion.created_at)
        )
        assert result.delivery_held == [month]
        # Its month is kept whole: the event record's delivery beside it too.
        assert Delivery.objects.filter(record_created_at=conversion.created_at).count() == 2
    else:
        assert Delivery.objects.filter(record_created_at=conversion.created_at).count() == 1
    for age in (92, 130):  # the months with nothing left to send went as ever
        assert not Delivery.objects.filter(
            record_created_at=history["records"][age][0].created_at
        ).exists()

    # Sent, it goes with its month on the next run, attempts and all.
    send_all(now + timedelta(seconds=1))
    again = prune(now=now)

    assert not Delivery.objects.filter(record_created_at=conversion.created_at).exists()
    assert not DeliveryAttempt.objects.filter(record_created_at=conversion.created_at).exists()
    assert again.delivery_held == []


@requires_postgresql
@RETENTION
def test_a_delivery_for_a_record_whose_month_was_dropped_is_sent_then_pruned(history):
    now = history["now"]
    prune(now=now)
    conversion, _ = history["records"][400]
    month = partitions.partition_name(
        "tracking_delivery", partitions.month_start(conversion.created_at)
    )
    assert month not in [p.name for p in partitions.partitions("tracking_delivery")]
    # Long after, a manager sends the record to its publisher again (the Test path).
    (postback,) = [p for p in offer_postbacks(conversion.offer_id) if p.trigger == "conversion"]
    (late,) = deliveries_create(record=conversion, only=postback, now=now)

    # No month for it: it waits in the DEFAULT partition and is claimed and sent from there.
    assert where(late.pk) == "tracking_delivery_default"
    send_all(now)
    late.refresh_from_db()
    assert late.outcome == "delivered"
    # The next run makes its month again to move it out of the DEFAULT partition, and
    # deletes it (it is past retention and sent); the run after drops the empty months.
    result = prune(now=now)
    assert month in result.created_partitions
    assert not Delivery.objects.filter(pk=late.pk).exists()
    assert not DeliveryAttempt.objects.filter(delivery_id=late.pk).exists()
    attempts = partitions.partition_name(
        "tracking_deliveryattempt", partitions.month_start(conversion.created_at)
    )
    assert set(prune(now=now).delivery_dropped) == {month, attempts}


def where(delivery_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM tracking_delivery WHERE id = %s", [delivery_id]
        )
        return cursor.fetchone()[0]


@requires_postgresql
def test_a_delivery_lands_in_the_month_of_the_record_it_reports_not_its_own():
    partitions.ensure_partitions(now=datetime(2026, 11, 1, tzinfo=UTC), months_ahead=1)
    publisher = PublisherFactory()
    PublisherPostback.objects.create(
        publisher=publisher, trigger="conversion", url="http://publisher.example/c"
    )
    sent = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    for moment in (
        datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),  # last instant of a month
        datetime(2026, 12, 1, tzinfo=UTC),  # first instant of the next
    ):
        conversion = ConversionFactory(click__publisher=publisher, created_at=moment)
        (delivery,) = deliveries_create(record=conversion, now=sent)
        assert delivery.record_created_at == moment
        assert where(delivery.pk) == partitions.partition_name(
            "tracking_delivery", partitions.month_start(moment)
        )
