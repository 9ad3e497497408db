"""The hourly report totals (PostgreSQL): kept exact by the database, equal to the records."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import combinations

import pytest
from django.db import connection
from django.test import override_settings

from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
)
from tests.markers import requires_postgresql
from tracking.models import Conversion, EventRecord
from tracking.selectors import (
    GROUP_KEYS,
    Period,
    report_rows,
    rollup_covers,
    rollup_report_rows,
    rollup_totals,
)

pytestmark = [pytest.mark.django_db, requires_postgresql]


def hourly_totals() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT offer_id, hour, event_id, currency, sum(count), sum(revenue), sum(payout) "
            "FROM tracking_hourlytotal GROUP BY 1, 2, 3, 4 HAVING sum(count) <> 0 "
            "ORDER BY 1, 2, 3, 4"
        )
        return cursor.fetchall()


@pytest.fixture
def records():
    offers = [OfferFactory(), OfferFactory()]
    events = [EventFactory(offer=offers[0]), EventFactory(offer=offers[0], allow_multiple=True)]
    start = datetime(2026, 10, 30, 20, 15, tzinfo=UTC)
    for n in range(12):
        conversion = ConversionFactory(
            click__offer=offers[n % 2],
            created_at=start + timedelta(hours=3 * n),
            revenue=Decimal("5.00") + n,
            payout=Decimal("3.10"),
            currency="USD" if n % 3 else "EUR",
        )
        if conversion.offer == offers[0]:
            for i, event in enumerate(events):
                EventRecordFactory(
                    conversion=conversion,
                    event=event,
                    created_at=conversion.created_at + timedelta(minutes=50 * (i + 1)),
                    revenue=Decimal("1.35") * (i + 1),
                    payout=Decimal("0.70"),
                    currency=conversion.currency,
                )
    return {"offers": offers, "events": events}


def test_every_written_record_is_counted_in_its_offer_hour_event_and_currency(records):
    offer = records["offers"][0]
    record = EventRecord.objects.filter(offer=offer).order_by("id").first()
    hour = record.created_at.replace(minute=0, second=0, microsecond=0)

    rows = [
        row
        for row in hourly_totals()
        if row[:4] == (offer.pk, hour, record.event_id, record.currency)
    ]
    expected = EventRecord.objects.filter(
        offer=offer,
        event=record.event,
        currency=record.currency,
        created_at__gte=hour,
        created_at__lt=hour + timedelta(hours=1),
    )
    assert rows == [
        (
            offer.pk,
            hour,
            record.event_id,
            record.currency,
            expected.count(),
            sum(r.revenue for r in expected),
            sum(r.payout for r in expected),
        )
    ]


def test_changing_or_deleting_a_record_keeps_the_totals_exact(records):
    before = hourly_totals()
    record = EventRecord.objects.order_by("id").first()
    record.revenue += Decimal("10.00")
    record.created_at += timedelta(hours=5)
    record.save()
    conversion = Conversion.objects.order_by("-id").first()
    EventRecord.objects.filter(conversion=conversion).delete()
    conversion.delete()

    after = hourly_totals()
    assert after != before
    assert after == recomputed()


def test_truncating_the_records_empties_the_totals(records):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred key checks first
        cursor.execute("TRUNCATE tracking_statuschange, tracking_eventrecord")
    assert all(row[2] == 0 for row in hourly_totals())  # only conversions are left
    assert hourly_totals() == recomputed()


def recomputed() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT offer_id, date_trunc('hour', created_at, 'UTC') AS hour, 0, currency,
                   count(*), sum(revenue), sum(payout)
            FROM tracking_conversion GROUP BY 1, 2, 3, 4
            UNION ALL
            SELECT offer_id, date_trunc('hour', created_at, 'UTC'), event_id, currency,
                   count(*), sum(revenue), sum(payout)
            FROM tracking_eventrecord GROUP BY 1, 2, 3, 4
            ORDER BY 1, 2, 3, 4
            """
        )
        return cursor.fetchall()


GROUPINGS = [
    list(keys)
    for size in (1, 2, 3)
    for keys in combinations([k for k in GROUP_KEYS if k != "publisher"], size)
]


@pytest.mark.parametrize("group_by", GROUPINGS, ids=",".join)
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Berlin"])
def test_the_totals_answer_exactly_what_the_records_answer(records, group_by, zone):
    start = datetime(2026, 10, 31, tzinfo=UTC)
    with override_settings(TIME_ZONE=zone):
        for period, offer in [
            (Period(), None),
            (Period(start=start, end=start + timedelta(days=1)), None),
            (Period(start=start), records["offers"][0].pk),
        ]:
            assert rollup_covers(group_by=group_by, period=period)
            from_records = report_rows(
                group_by=group_by,
                conversions=period.apply(Conversion.objects.filter(**offer_filter(offer))),
                event_records=period.apply(EventRecord.objects.filter(**offer_filter(offer))),
            )
            from_totals = rollup_report_rows(group_by=group_by, period=period, offer=offer)
            assert from_totals == from_records
            assert from_records
            for row in from_totals:  # counts are whole numbers, not SQL numerics
                assert type(row["conversions"]) is int and type(row["events"]) is int


def offer_filter(offer: int | None) -> dict:
    return {} if offer is None else {"offer_id": offer}


def test_list_totals_from_the_hourly_totals_equal_the_records(records):
    event = records["events"][1]
    totals = rollup_totals(kind="eventrecord", period=Period(), event=event.pk)

    expected = EventRecord.objects.filter(event=event)
    assert sum(row["count"] for row in totals) == expected.count()
    assert sum(row["revenue"] for row in totals) == sum(r.revenue for r in expected)
    assert {row["currency"] for row in totals} == set(expected.values_list("currency", flat=True))
    conversions = rollup_totals(kind="conversion", period=Period())
    assert sum(row["count"] for row in conversions) == Conversion.objects.count()
    assert all(type(row["count"]) is int for row in conversions)


def test_periods_off_the_hour_and_publisher_grouping_read_the_records():
    on_the_hour = datetime(2026, 10, 31, 13, tzinfo=UTC)
    assert rollup_covers(group_by=["day"], period=Period(start=on_the_hour))
    assert not rollup_covers(
        group_by=["day"], period=Period(end=on_the_hour + timedelta(microseconds=1))
    )
    assert not rollup_covers(group_by=["day", "publisher"], period=Period())


@override_settings(TIME_ZONE="Asia/Kolkata")
def test_a_time_zone_whose_days_are_not_whole_utc_hours_reads_the_records():
    assert not rollup_covers(group_by=["day"], period=Period())
