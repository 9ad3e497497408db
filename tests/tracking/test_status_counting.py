"""Counting by status (docs/postbacks.md "Approving and rejecting"): the reports API, the
reports page and the admin list totals count approved records unless asked; the hourly
totals stay exact per status whatever changes."""

import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from tests.factories import ConversionFactory, EventFactory, EventRecordFactory, OfferFactory
from tests.markers import requires_postgresql
from tracking.models import Conversion, EventRecord, StatusChange
from tracking.selectors import Period, report_rows, rollup_report_rows, rollup_totals
from tracking.status import record_status_change

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 10, 5, 12, tzinfo=UTC)


@pytest.fixture
def mixed():
    """On one day: conversions approved (5.00/3.00), pending (7.00/4.00) and rejected
    (11.00/6.00); an approved and a rejected event record (2.00/1.00)."""
    offer = OfferFactory()
    approved = ConversionFactory(click__offer=offer, created_at=DAY)
    pending = ConversionFactory(
        click__offer=offer,
        created_at=DAY,
        revenue=Decimal("7.00"),
        payout=Decimal("4.00"),
        status="pending",
    )
    rejected = ConversionFactory(
        click__offer=offer,
        created_at=DAY,
        revenue=Decimal("11.00"),
        payout=Decimal("6.00"),
        status="rejected",
    )
    event = EventFactory(offer=offer)
    EventRecordFactory(conversion=approved, event=event, created_at=DAY)
    EventRecordFactory(conversion=rejected, event=event, created_at=DAY, status="rejected")
    return {"offer": offer, "approved": approved, "pending": pending, "rejected": rejected}


def api_rows(client, **params):  # noqa: ANN001, ANN201
    response = client.get(
        "/api/v1/reports/", {"since": "2026-10-05", "until": "2026-10-05", **params}
    )
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_the_reports_api_counts_approved_records_by_default(analyst_client, mixed):
    [row] = api_rows(analyst_client)
    assert (row["conversions"], row["events"], row["revenue"], row["payout"]) == (
        1,
        1,
        "7.00",
        "4.00",
    )


def test_the_reports_api_takes_status(analyst_client, mixed):
    [pending] = api_rows(analyst_client, status="pending")
    assert (pending["conversions"], pending["events"], pending["revenue"]) == (1, 0, "7.00")
    [both] = api_rows(analyst_client, status="pending,rejected")
    assert (both["conversions"], both["events"], both["revenue"]) == (2, 1, "20.00")
    bad = analyst_client.get("/api/v1/reports/", {"status": "held"})
    assert bad.status_code == 400
    assert "status" in bad.json()


def test_grouping_by_status_returns_every_status_unless_filtered(analyst_client, mixed):
    rows = api_rows(analyst_client, group_by="status")
    assert [(r["status"], r["conversions"], r["events"], r["revenue"]) for r in rows] == [
        ("approved", 1, 1, "7.00"),
        ("pending", 1, 0, "7.00"),
        ("rejected", 1, 1, "13.00"),
    ]
    filtered = api_rows(analyst_client, group_by="day,status", status="rejected")
    assert [(r["day"], r["status"], r["conversions"]) for r in filtered] == [
        ("2026-10-05", "rejected", 1)
    ]


def test_the_reports_page_counts_approved_and_shows_every_status(client, mixed):
    from tests.factories import analyst

    client.force_login(analyst())
    url = "/admin/tracking/eventrecord/reports/"
    page = client.get(url, {"since": "2026-10-05", "until": "2026-10-05"})
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r"<td>2026-10-05</td><td>1</td><td>1</td>", html)
    status_rows = re.findall(r'<tr class="ct-status-row">(.*?)</tr>', html)
    assert [re.findall(r"<td>([^<]*)</td>", row)[:4] for row in status_rows] == [
        ["approved", "USD", "1", "1"],
        ["pending", "USD", "1", "0"],
        ["rejected", "USD", "1", "1"],
    ]

    rejected = client.get(url, {"since": "2026-10-05", "until": "2026-10-05", "status": "rejected"})
    assert re.search(r"<td>2026-10-05</td><td>1</td><td>1</td>", rejected.content.decode())
    everything = client.get(
        url, {"since": "2026-10-05", "until": "2026-10-05", "status": "approved,pending,rejected"}
    )
    assert re.search(r"<td>2026-10-05</td><td>3</td><td>2</td>", everything.content.decode())


def totals_rows(html: str) -> list[list[str]]:
    table = re.search(r'<table class="ct-totals".*?</table>', html, re.S)
    assert table
    return [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r'<tr class="ct-total-row">(.*?)</tr>', table.group(0), re.S)
    ]


def test_admin_list_totals_are_split_by_status_and_follow_the_status_filter(client, mixed):
    from tests.factories import analyst

    client.force_login(analyst())
    html = client.get("/admin/tracking/conversion/", {"period": "all"}).content.decode()
    assert totals_rows(html) == [
        ["approved", "USD", "1", "5.00 USD", "3.00 USD", "2.00 USD"],
        ["pending", "USD", "1", "7.00 USD", "4.00 USD", "3.00 USD"],
        ["rejected", "USD", "1", "11.00 USD", "6.00 USD", "5.00 USD"],
    ]
    only_pending = client.get(
        "/admin/tracking/conversion/", {"period": "all", "status__exact": "pending"}
    ).content.decode()
    assert totals_rows(only_pending) == [
        ["pending", "USD", "1", "7.00 USD", "4.00 USD", "3.00 USD"]
    ]
    assert f"/admin/tracking/conversion/{mixed['pending'].pk}/change/" in only_pending
    assert f"/admin/tracking/conversion/{mixed['approved'].pk}/change/" not in only_pending
    # With a publisher filter the totals are read from the records, split alike.
    by_publisher = client.get(
        "/admin/tracking/conversion/",
        {"period": "all", "publisher__id__exact": mixed["rejected"].publisher_id},
    ).content.decode()
    assert totals_rows(by_publisher) == [
        ["rejected", "USD", "1", "11.00 USD", "6.00 USD", "5.00 USD"]
    ]


def hourly_by_status() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT offer_id, hour, event_id, currency, status, sum(count), sum(revenue), "
            "sum(payout) FROM tracking_hourlytotal GROUP BY 1, 2, 3, 4, 5 "
            "HAVING sum(count) <> 0 ORDER BY 1, 2, 3, 4, 5"
        )
        return cursor.fetchall()


def from_records() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT offer_id, date_trunc('hour', created_at, 'UTC'), 0, currency, status,
                   count(*), sum(revenue), sum(payout)
            FROM tracking_conversion GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT offer_id, date_trunc('hour', created_at, 'UTC'), event_id, currency, status,
                   count(*), sum(revenue), sum(payout)
            FROM tracking_eventrecord GROUP BY 1, 2, 3, 4, 5
            ORDER BY 1, 2, 3, 4, 5
            """
        )
        return cursor.fetchall()


@requires_postgresql
def test_the_hourly_totals_equal_the_records_after_random_status_changes():
    rng = random.Random(20261202)  # noqa: S311 - reproducible test data
    offers = [OfferFactory(), OfferFactory()]
    events = [EventFactory(offer=offer, allow_multiple=True) for offer in offers]
    conversions, records = [], []
    for n in range(16):
        offer = offers[n % 2]
        conversion = ConversionFactory(
            click__offer=offer,
            created_at=DAY + timedelta(minutes=37 * n),
            revenue=Decimal(rng.randint(100, 999)) / 100,
            currency="USD" if n % 3 else "EUR",
        )
        conversions.append(conversion)
        for i in range(rng.randint(0, 3)):
            records.append(
                EventRecordFactory(
                    conversion=conversion,
                    event=events[n % 2],
                    created_at=conversion.created_at + timedelta(minutes=29 * (i + 1)),
                    revenue=Decimal(rng.randint(1, 500)) / 100,
                    currency=conversion.currency,
                )
            )
    sources = ["admin", "api", "postback"]
    for _ in range(120):
        record = rng.choice(conversions + records)
        record_status_change(
            record=record,
            status=rng.choice(["approved", "pending", "rejected"]),
            reason="random",
            source=rng.choice(sources),
        )
        assert hourly_by_status() == from_records()

    assert StatusChange.objects.filter(source="rule").exists()  # the cascade took part
    assert len({s for (*_, s, _c, _r, _p) in from_records()}) == 3
    # And every reading of them agrees with the records, per status.
    everything = Period()
    for statuses in (["approved"], ["pending"], ["rejected"], ["pending", "rejected"], None):
        expected = report_rows(
            group_by=["day", "offer", "event", "status"],
            conversions=_only(Conversion.objects.all(), statuses),
            event_records=_only(EventRecord.objects.all(), statuses),
        )
        assert (
            rollup_report_rows(
                group_by=["day", "offer", "event", "status"], period=everything, statuses=statuses
            )
            == expected
        )
        totals = rollup_totals(kind="eventrecord", period=everything, statuses=statuses)
        expected_count = _only(EventRecord.objects.all(), statuses).count()
        assert sum(row["count"] for row in totals) == expected_count


def _only(queryset, statuses):  # noqa: ANN001, ANN202
    return queryset if statuses is None else queryset.filter(status__in=statuses)
