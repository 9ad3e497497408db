"""The read API for what was recorded: /api/v1/conversions/, /event-records/, /postbacks/."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
)
from tracking.models import Reason

pytestmark = pytest.mark.django_db

LISTS = ["/api/v1/conversions/", "/api/v1/event-records/", "/api/v1/postbacks/"]


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("url", LISTS)
def test_anonymous_requests_get_401(api_client, url):
    assert api_client.get(url).status_code == 401


@pytest.mark.parametrize("url", LISTS)
def test_analysts_and_account_managers_can_read(analyst_client, manager_client, url):
    assert analyst_client.get(url).status_code == 200
    assert manager_client.get(url).status_code == 200


@pytest.mark.parametrize("url", LISTS)
def test_a_user_without_view_permission_gets_403(url):
    from tests.conftest import token_client
    from tests.factories import UserFactory

    assert token_client(UserFactory()).get(url).status_code == 403


@pytest.mark.parametrize("url", LISTS)
def test_records_cannot_be_written_through_the_api(manager_client, superuser_client, url):
    assert manager_client.post(url, {}, format="json").status_code == 403
    assert superuser_client.post(url, {}, format="json").status_code == 405
    assert superuser_client.delete(f"{url}1/").status_code == 405


def test_conversions_list_is_paginated_with_their_fields(analyst_client):
    conversion = ConversionFactory(
        revenue=Decimal("7.50"), payout=Decimal("2.25"), amount=Decimal("75.0000"), adv_sub="o-1"
    )
    ConversionFactory.create_batch(2)

    body = analyst_client.get("/api/v1/conversions/").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    row = next(r for r in body["results"] if r["id"] == conversion.pk)
    assert row == {
        "id": conversion.pk,
        "created_at": row["created_at"],
        "transaction_id": conversion.click.transaction_id,
        "click": conversion.click_id,
        "offer": conversion.offer_id,
        "advertiser": conversion.offer.advertiser_id,
        "publisher": conversion.publisher_id,
        "revenue": "7.50",
        "payout": "2.25",
        "profit": "5.25",
        "currency": "USD",
        "amount": "75.0000",
        "adv_sub": "o-1",
        "adv_sub2": "",
        "adv_sub3": "",
        "adv_sub4": "",
        "adv_sub5": "",
        "status": "approved",
        "status_reason": "",
        "status_changed_at": row["status_changed_at"],
        "status_history": [],
    }


def test_event_records_carry_their_event_and_conversion(analyst_client):
    record = EventRecordFactory(event__name="purchase")

    row = analyst_client.get(f"/api/v1/event-records/{record.pk}/").json()

    assert (row["event"], row["event_name"], row["conversion"]) == (
        record.event_id,
        "purchase",
        record.conversion_id,
    )
    assert row["transaction_id"] == record.click.transaction_id
    assert row["allow_multiple"] is False


def test_postbacks_show_the_log_with_the_token_masked(analyst_client, client):
    conversion = ConversionFactory()
    token = conversion.offer.advertiser.postback_token
    client.get("/postback", {"secure": token, "transaction_id": conversion.click.transaction_id})

    body = analyst_client.get("/api/v1/postbacks/").json()

    assert body["count"] == 1
    row = body["results"][0]
    assert row["reason"] == "duplicate_conversion"
    assert row["status_code"] == 409
    assert row["params"]["transaction_id"] == conversion.click.transaction_id
    assert token not in str(body)
    assert row["secure_masked"] == f"{token[:4]}••••••••"


def test_conversions_filter_by_offer_advertiser_publisher_and_transaction(analyst_client):
    first, second = ConversionFactory(), ConversionFactory()
    url = "/api/v1/conversions/"

    assert ids(analyst_client.get(url, {"offer": first.offer_id})) == [first.pk]
    assert ids(analyst_client.get(url, {"advertiser": second.offer.advertiser_id})) == [second.pk]
    assert ids(analyst_client.get(url, {"publisher": first.publisher_id})) == [first.pk]
    assert ids(analyst_client.get(url, {"transaction_id": second.click.transaction_id})) == [
        second.pk
    ]
    assert ids(analyst_client.get(url, {"offer": 999999})) == []


def test_event_records_filter_by_event_and_adv_sub(analyst_client):
    offer = OfferFactory()
    purchase, signup = EventFactory(offer=offer), EventFactory(offer=offer)
    a = EventRecordFactory(
        conversion__click__offer=offer, event=purchase, adv_sub="A", allow_multiple=True
    )
    b = EventRecordFactory(conversion=a.conversion, event=signup, adv_sub="B")
    url = "/api/v1/event-records/"

    assert ids(analyst_client.get(url, {"event": purchase.pk})) == [a.pk]
    assert ids(analyst_client.get(url, {"adv_sub": "B"})) == [b.pk]
    assert ids(analyst_client.get(url, {"offer": offer.pk, "event": signup.pk})) == [b.pk]
    assert sorted(ids(analyst_client.get(url, {"transaction_id": a.click.transaction_id}))) == [
        a.pk,
        b.pk,
    ]


def test_postbacks_filter_by_reason_transaction_id_and_offer(analyst_client):
    offer = OfferFactory()
    kept = PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, offer=offer)
    PostbackLogFactory(reason=Reason.UNKNOWN_TRANSACTION)
    url = "/api/v1/postbacks/"

    assert ids(analyst_client.get(url, {"reason": "no_conversion"})) == [kept.pk]
    assert ids(analyst_client.get(url, {"transaction_id": kept.transaction_id})) == [kept.pk]
    assert ids(analyst_client.get(url, {"offer": offer.pk})) == [kept.pk]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_since_and_until_take_whole_days_in_the_time_zone(analyst_client, settings):
    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    before = ConversionFactory(created_at=datetime(2026, 3, 9, 23, 59, 59, tzinfo=new_york))
    first = ConversionFactory(created_at=datetime(2026, 3, 10, 0, 0, tzinfo=new_york))
    last = ConversionFactory(created_at=datetime(2026, 3, 10, 23, 59, 59, tzinfo=new_york))
    after = ConversionFactory(created_at=datetime(2026, 3, 11, 0, 0, tzinfo=new_york))
    url = "/api/v1/conversions/"

    day = analyst_client.get(url, {"since": "2026-03-10", "until": "2026-03-10"})
    from_day = analyst_client.get(url, {"since": "2026-03-10"})
    to_day = analyst_client.get(url, {"until": "2026-03-09"})

    assert sorted(ids(day)) == [first.pk, last.pk]
    assert sorted(ids(from_day)) == [first.pk, last.pk, after.pk]
    assert ids(to_day) == [before.pk]


def test_since_and_until_take_date_times_inclusive(analyst_client):
    early = ConversionFactory(created_at=datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    late = ConversionFactory(created_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    url = "/api/v1/conversions/"

    window = analyst_client.get(
        url, {"since": "2026-05-01T10:00:00Z", "until": "2026-05-01T11:00:00+00:00"}
    )
    offset = analyst_client.get(url, {"since": "2026-05-01T13:30:00+01:30"})

    assert ids(window) == [early.pk]
    assert ids(offset) == [late.pk]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "yesterday"),
        ("since", "2026-13-01"),
        ("until", "2026-02-30"),
        ("until", "2026-05-01T25:00"),
        ("since", "0001-01-01T00:00:00+14:00"),
    ],
)
def test_a_malformed_date_is_400_with_a_field_message(analyst_client, url, name, value):
    response = analyst_client.get(url, {name: value})

    assert response.status_code == 400
    assert name in response.json()


def test_the_last_possible_day_is_no_error(analyst_client):
    ConversionFactory()

    response = analyst_client.get("/api/v1/conversions/", {"until": "9999-12-31"})

    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("url", "name", "value"),
    [
        ("/api/v1/conversions/", "offer", "abc"),
        ("/api/v1/conversions/", "publisher", "1.5"),
        ("/api/v1/conversions/", "advertiser", "-1"),
        ("/api/v1/conversions/", "offer", "9" * 40),
        ("/api/v1/event-records/", "event", "x"),
        ("/api/v1/postbacks/", "reason", "nope"),
        ("/api/v1/postbacks/", "offer", "0"),
    ],
)
def test_a_malformed_filter_is_400_with_a_field_message(analyst_client, url, name, value):
    response = analyst_client.get(url, {name: value})

    assert response.status_code == 400
    assert name in response.json()


def test_lists_are_newest_first(analyst_client):
    old = ConversionFactory(created_at=at("2026-01-01T00:00:00+00:00"))
    new = ConversionFactory(created_at=at("2026-02-01T00:00:00+00:00"))

    assert ids(analyst_client.get("/api/v1/conversions/")) == [new.pk, old.pk]


def test_list_queries_do_not_grow_with_the_page(analyst_client, django_assert_max_num_queries):
    EventRecordFactory.create_batch(5)
    PostbackLogFactory.create_batch(5)

    for url in LISTS:
        # auth token + user + permissions + count + page: a constant, not one per row.
        with django_assert_max_num_queries(8):
            assert analyst_client.get(url).status_code == 200
