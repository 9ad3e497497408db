"""GET /api/v1/reports/: grouping, totals, currencies, periods in TIME_ZONE, errors, roles."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.conftest import token_client
from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PublisherFactory,
    UserFactory,
)
from tracking.models import Conversion, EventRecord

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def rows(client, **params) -> list[dict]:  # noqa: ANN001
    """The rows for ``params``; the network's month unless a period is given (the default
    period is the last 30 days, which the network's October is not)."""
    if "since" not in params and "until" not in params:
        params.update(since="2026-10-01", until="2026-10-31")
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"period", "results", "retention"}
    return body["results"]


@pytest.fixture
def network():
    """One offer with two events over two days, a second offer, a second currency."""
    offer = OfferFactory()
    other_offer = OfferFactory()
    purchase = EventFactory(offer=offer, name="purchase")
    signup = EventFactory(offer=offer, name="signup")
    day1 = ConversionFactory(
        click__offer=offer, created_at=at(1), revenue=Decimal("5.00"), payout=Decimal("3.00")
    )
    day2 = ConversionFactory(
        click__offer=offer, created_at=at(2), revenue=Decimal("5.00"), payout=Decimal("3.00")
    )
    EventRecordFactory(
        conversion=day1,
        event=purchase,
        created_at=at(1, 13),
        revenue=Decimal("2.50"),
        payout=Decimal("1.25"),
    )
    EventRecordFactory(
        conversion=day1,
        event=signup,
        created_at=at(1, 14),
        revenue=Decimal("1.00"),
        payout=Decimal("0.40"),
    )
    EventRecordFactory(
        conversion=day2,
        event=purchase,
        created_at=at(2, 9),
        revenue=Decimal("2.50"),
        payout=Decimal("1.25"),
    )
    # Same offer and day, another currency: never added to the USD row.
    EventRecordFactory(
        conversion=day2,
        event=signup,
        created_at=at(2, 10),
        revenue=Decimal("9.00"),
        payout=Decimal("4.00"),
        currency="EUR",
    )
    ConversionFactory(click__offer=other_offer, created_at=at(1), revenue=Decimal("100.00"))
    return {"offer": offer, "other": other_offer, "purchase": purchase, "signup": signup}


def test_the_default_groups_by_day_and_adds_conversions_and_events_per_currency(
    analyst_client, network
):
    result = rows(analyst_client, offer=network["offer"].pk)

    assert result == [
        {
            "day": "2026-10-01",
            "currency": "USD",
            "conversions": 1,
            "events": 2,
            "revenue": "8.50",
            "payout": "4.65",
            "profit": "3.85",
        },
        {
            "day": "2026-10-02",
            "currency": "EUR",
            "conversions": 0,
            "events": 1,
            "revenue": "9.00",
            "payout": "4.00",
            "profit": "5.00",
        },
        {
            "day": "2026-10-02",
            "currency": "USD",
            "conversions": 1,
            "events": 1,
            "revenue": "7.50",
            "payout": "4.25",
            "profit": "3.25",
        },
    ]


def test_grouping_by_event_puts_conversions_in_rows_whose_event_is_null(analyst_client, network):
    result = rows(analyst_client, offer=network["offer"].pk, group_by="event")

    by_key = {(row["event"], row["currency"]): row for row in result}
    assert set(by_key) == {
        (None, "USD"),
        (network["purchase"].pk, "USD"),
        (network["signup"].pk, "USD"),
        (network["signup"].pk, "EUR"),
    }
    assert by_key[(None, "USD")]["conversions"] == 2
    assert by_key[(None, "USD")]["events"] == 0
    assert by_key[(network["purchase"].pk, "USD")]["events"] == 2
    assert by_key[(network["purchase"].pk, "USD")]["conversions"] == 0
    assert "day" not in result[0]


def test_each_row_carries_exactly_its_group_keys(analyst_client, network):
    result = rows(analyst_client, group_by="day,offer,event,publisher")

    assert result
    for row in result:
        assert set(row) == {
            "day",
            "offer",
            "offer_name",
            "event",
            "event_name",
            "publisher",
            "publisher_name",
            "currency",
            "conversions",
            "events",
            "revenue",
            "payout",
            "profit",
        }
    assert set(rows(analyst_client, group_by="publisher")[0]) == {
        "publisher",
        "publisher_name",
        "currency",
        "conversions",
        "events",
        "revenue",
        "payout",
        "profit",
    }


def test_grouping_by_offer_and_publisher_splits_the_offers(analyst_client, network):
    publisher = PublisherFactory()
    ConversionFactory(click__offer=network["other"], click__publisher=publisher, created_at=at(3))

    result = rows(analyst_client, group_by="offer,publisher")

    offers = {row["offer"] for row in result}
    assert offers == {network["offer"].pk, network["other"].pk}
    assert any(row["publisher"] == publisher.pk and row["conversions"] == 1 for row in result)


@pytest.mark.parametrize("group_by", ["day", "offer", "event", "publisher", "day,event,publisher"])
def test_report_totals_equal_the_sum_of_the_records(analyst_client, network, group_by):
    result = rows(analyst_client, group_by=group_by)

    for currency in ("USD", "EUR"):
        mine = [row for row in result if row["currency"] == currency]
        conversions = Conversion.objects.filter(currency=currency)
        records = EventRecord.objects.filter(currency=currency)
        assert sum(row["conversions"] for row in mine) == conversions.count()
        assert sum(row["events"] for row in mine) == records.count()
        revenue = sum(c.revenue for c in conversions) + sum(r.revenue for r in records)
        payout = sum(c.payout for c in conversions) + sum(r.payout for r in records)
        assert sum(Decimal(row["revenue"]) for row in mine) == revenue
        assert sum(Decimal(row["payout"]) for row in mine) == payout
        assert sum(Decimal(row["profit"]) for row in mine) == revenue - payout


def test_since_and_until_dates_are_whole_days_with_until_inclusive(analyst_client, network):
    only_first = rows(analyst_client, since="2026-10-01", until="2026-10-01")
    assert {row["day"] for row in only_first} == {"2026-10-01"}
    assert sum(row["conversions"] for row in only_first) == 2  # both offers

    only_second = rows(analyst_client, since="2026-10-02")
    assert {row["day"] for row in only_second} == {"2026-10-02"}


def test_since_and_until_date_times_are_exact_moments(analyst_client, network):
    result = rows(
        analyst_client,
        offer=network["offer"].pk,
        since="2026-10-01T13:00:00Z",
        until="2026-10-01T13:00:00Z",
        group_by="event",
    )

    assert result == [
        {
            "event": network["purchase"].pk,
            "event_name": "purchase",
            "currency": "USD",
            "conversions": 0,
            "events": 1,
            "revenue": "2.50",
            "payout": "1.25",
            "profit": "1.25",
        }
    ]


@override_settings(TIME_ZONE="America/New_York")
def test_days_are_calendar_days_in_the_configured_time_zone(analyst_client):
    offer = OfferFactory()
    # 02:00 UTC on the 2nd is still the evening of the 1st in New York (UTC-4).
    ConversionFactory(click__offer=offer, created_at=datetime(2026, 10, 2, 2, tzinfo=UTC))

    result = rows(analyst_client, offer=offer.pk)
    assert [row["day"] for row in result] == ["2026-10-01"]
    assert rows(analyst_client, offer=offer.pk, since="2026-10-02") == []
    assert len(rows(analyst_client, offer=offer.pk, until="2026-10-01")) == 1


def test_an_offer_without_records_gives_no_rows(analyst_client, network):
    assert rows(analyst_client, offer=OfferFactory().pk) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day,month"}, "group_by"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30"}, "since"),
        ({"until": "2026-10-01T25:00:00"}, "until"),
        ({"offer": "abc"}, "offer"),
        ({"offer": "0"}, "offer"),
    ],
)
def test_invalid_input_is_a_400_with_a_message_for_the_field(analyst_client, params, field):
    response = analyst_client.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert body[field] and all(isinstance(message, str) for message in body[field])


def test_anonymous_requests_get_401(api_client):
    assert api_client.get(URL).status_code == 401


def test_a_user_without_a_role_gets_403():
    assert token_client(UserFactory()).get(URL).status_code == 403


def test_account_managers_and_superusers_can_read_reports(manager_client, superuser_client):
    assert manager_client.get(URL).status_code == 200
    assert superuser_client.get(URL).status_code == 200


def test_analysts_cannot_write_to_reports(analyst_client):
    assert analyst_client.post(URL, {}, format="json").status_code == 403


def test_the_admin_session_authenticates_too(client):
    from tests.factories import analyst

    client.force_login(analyst())
    response = client.get(URL, {"group_by": "day"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_grouped_rows_carry_names_beside_their_ids(analyst_client, network):
    result = rows(analyst_client, offer=network["offer"].pk, group_by="offer,event")

    by_event = {row["event"]: row for row in result if row["currency"] == "USD"}
    assert by_event[None]["event_name"] is None  # the conversions' row
    assert by_event[network["purchase"].pk]["event_name"] == "purchase"
    assert all(row["offer_name"] == network["offer"].name for row in result)


def test_the_answer_echoes_the_period_it_covers(analyst_client, network):
    body = analyst_client.get(URL, {"since": "2026-10-01", "until": "2026-10-02"}).json()

    assert body["period"] == {"since": "2026-10-01", "until": "2026-10-02", "time_zone": "UTC"}


def test_a_date_time_period_is_echoed_as_given(analyst_client):
    body = analyst_client.get(
        URL, {"since": "2026-10-01T13:00:00Z", "until": "2026-10-01T14:00:00+02:00"}
    ).json()

    assert body["period"]["since"] == "2026-10-01T13:00:00+00:00"
    # The same moment, read in UTC (tracking/filters.py reads every offset that way).
    assert body["period"]["until"] == "2026-10-01T12:00:00+00:00"


def test_without_a_period_the_report_covers_the_last_30_days_like_the_reports_page(
    analyst_client,
):
    today = timezone.localdate()
    ConversionFactory(created_at=timezone.now())
    ConversionFactory(created_at=timezone.now() - timedelta(days=45))

    body = analyst_client.get(URL).json()

    assert body["period"] == {
        "since": (today - timedelta(days=29)).isoformat(),
        "until": today.isoformat(),
        "time_zone": "UTC",
    }
    assert sum(row["conversions"] for row in body["results"]) == 1


def test_until_alone_reports_the_30_days_up_to_it(analyst_client):
    body = analyst_client.get(URL, {"until": "2026-10-31"}).json()

    assert body["period"]["since"] == "2026-10-02"


def test_the_schema_gives_real_examples_and_describes_the_period(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/reports/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}

    for name in ("since", "until"):
        description = parameters[name]["description"]
        assert "ISO date" in description and "TIME_ZONE" in description
        assert "Default" in description
        assert parameters[name]["examples"]
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]
    (value,) = [item["value"] for item in example.values()]
    assert value["period"]["time_zone"]
    assert all(row["profit"] not in ("-", "") for row in value["results"])
    profit = schema["components"]["schemas"]["ReportRow"]["properties"]["profit"]
    assert profit["example"] == "26.60"
    assert "period" in schema["components"]["schemas"]["Report"]["required"]
