"""What a hit costs the database: the statements each answer sends, counted for real.

On PostgreSQL, with the definitions cached, a postback is at most two statements whatever
its answer (the click with the definitions version; then the record and its log row, or
only the log row); one when it is accepted, in every URL form (docs/postbacks.md "The
URLs"); a click is one. The
test's own transaction adds savepoints around writes, which are not counted here:
outside a test they do not exist.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from offers.caps import cap_usage
from offers.models import OfferCap
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
    PublisherFactory,
)
from tests.markers import requires_postgresql
from tracking import caps
from tracking.models import Conversion, PostbackLog
from tracking.services import generate_transaction_id

pytestmark = [pytest.mark.django_db, requires_postgresql]


def statements(client, path: str, params: dict[str, str]) -> tuple[int, list[str]]:  # noqa: ANN001
    with CaptureQueriesContext(connection) as captured:
        status = client.get(path, params).status_code
    sql = [q["sql"] for q in captured.captured_queries]
    return status, [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


@pytest.fixture
def world():
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, name="purchase")
    token = conversion.offer.advertiser.postback_token
    # The first hit of a version loads what it needs: the offer (with its advertiser's
    # token) and the offer's events.
    warm = ClickFactory(offer=conversion.offer)
    return conversion, event, token, warm


def test_the_first_postback_of_a_version_loads_the_definitions_once(client, world):
    conversion, event, token, warm = world
    params = {"secure": token, "transaction_id": warm.transaction_id, "event_id": event.pk}

    status, sql = statements(client, "/postback", params)

    # The click; the offer; its events; every advertiser's token (the log masks them by
    # value, tracking/masking.py); the log row (no_conversion).
    assert status == 422
    assert len(sql) == 5
    assert "offers_offer" in sql[1] and "offers_event" in sql[2]
    assert "offers_advertiser" in sql[3]


def converted_click(offer) -> str:  # noqa: ANN001
    return ConversionFactory(click=ClickFactory(offer=offer)).click.transaction_id


def test_an_accepted_postback_is_one_statement_in_every_url_form(client, world):
    conversion, event, token, warm = world
    offer = conversion.offer
    # A second offer of the advertiser with an event of the same name: the global URL's
    # event_name then names an event of two offers, and the click's offer decides.
    other_offer = OfferFactory(advertiser=offer.advertiser)
    EventFactory(offer=other_offer, name="purchase")
    # Warm the cache as traffic would: the offer's events, the advertiser's offers.
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id, "event_id": 1})
    fresh = lambda: ClickFactory(offer=offer).transaction_id  # noqa: E731
    forms = [
        ("offer URL conversion", "/postback", {"transaction_id": fresh(), "offer_id": offer.pk}),
        ("global URL conversion", "/postback", {"transaction_id": fresh()}),
        ("site root conversion", "/", {"transaction_id": fresh()}),
        (
            "global URL conversion, another offer",
            "/postback",
            {"transaction_id": ClickFactory(offer=other_offer).transaction_id},
        ),
        (
            "event URL",
            "/postback",
            {
                "transaction_id": converted_click(offer),
                "offer_id": offer.pk,
                "event_id": event.pk,
                "event_name": "purchase",
            },
        ),
        (
            "event_id only",
            "/postback",
            {"transaction_id": converted_click(offer), "event_id": event.pk},
        ),
        (
            "global URL event_name only",
            "/postback",
            {"transaction_id": converted_click(offer), "event_name": "purchase"},
        ),
        (
            "global URL event_name only, another offer",
            "/postback",
            {"transaction_id": converted_click(other_offer), "event_name": "purchase"},
        ),
        (
            "site root event",
            "/",
            {"transaction_id": converted_click(offer), "event_name": "purchase"},
        ),
    ]

    for form, path, params in forms:
        status, sql = statements(client, path, {"secure": token, **params})

        assert (form, status, len(sql)) == (form, 200, 1), sql


def test_with_the_definitions_cached_any_other_answer_is_two_statements(client, world):
    conversion, event, token, warm = world
    offer = conversion.offer_id
    unconverted = ClickFactory(offer=conversion.offer)
    converted = {"secure": token, "transaction_id": conversion.click.transaction_id}
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id, "event_id": 1})
    client.get("/postback", {**converted, "event_id": event.pk})
    # (case, params, status): the one-statement attempt finds it does not accept and brings
    # back what it read; the second statement writes the log row.
    cases = [
        ("duplicate event", {**converted, "event_id": event.pk}, 409),
        ("duplicate event, event_name only", {**converted, "event_name": "purchase"}, 409),
        ("duplicate conversion", {**converted, "offer_id": offer}, 409),
        ("duplicate conversion, global URL", converted, 409),
        (
            "unknown transaction",
            {"secure": token, "transaction_id": generate_transaction_id(), "offer_id": offer},
            404,
        ),
        (
            "no conversion",
            {
                "secure": token,
                "transaction_id": unconverted.transaction_id,
                "event_name": "purchase",
            },
            422,
        ),
        ("unknown event", {**converted, "event_name": "Purchase"}, 404),
        ("offer mismatch", {**converted, "offer_id": "999999"}, 422),
    ]

    for case, params, expected in cases:
        status, sql = statements(client, "/postback", params)

        assert (case, status, len(sql)) == (case, expected, 2), sql


def test_a_token_that_is_nobodys_is_looked_up_each_time(client, world):
    conversion, *_ = world
    params = {"secure": "x" * 43, "transaction_id": conversion.click.transaction_id}
    client.get("/postback", params)

    status, sql = statements(client, "/postback", params)

    # The click; the token's digest (unknown tokens are not cached); the definitions version
    # again, for the tokens to mask (a request that resolved no advertiser reads it: one
    # rejected at checks 1 and 2 read nothing before); the log row.
    assert (status, len(sql)) == (403, 4)


def test_a_click_is_one_statement_once_the_offer_is_cached(client, world):
    conversion, *_ = world
    params = {"offer_id": conversion.offer_id, "aff_id": conversion.publisher_id}
    client.get("/click", params)

    status, sql = statements(client, "/click", params)

    assert status == 302
    assert len(sql) == 1
    assert sql[0].lstrip().startswith("WITH state AS")


def test_a_capped_offers_accepted_postbacks_are_one_statement_that_takes_their_slots(client, world):
    conversion, event, token, warm = world
    offer = conversion.offer
    other_publisher = PublisherFactory()
    made = [
        OfferCap.objects.create(offer=offer, metric="conversions", period="day", limit=100),
        OfferCap.objects.create(
            offer=offer, metric="payout", period="month", limit=100_000, mode="soft"
        ),
        # Another publisher's cap: these clicks count nothing against it.
        OfferCap.objects.create(
            offer=offer, metric="conversions", period="day", limit=1, publisher=other_publisher
        ),
    ]
    for cap in made:
        caps.counter_start(cap)
    start = cap_usage(made)
    # Warm the cache, and this process's knowledge of the period's counters.
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id, "event_id": 1})
    # The period's first postback in this process makes sure its counters exist first (one
    # statement more, once).
    first = {"secure": token, "transaction_id": ClickFactory(offer=offer).transaction_id}
    assert len(statements(client, "/postback", first)[1]) == 2
    forms = [
        {"transaction_id": ClickFactory(offer=offer).transaction_id, "offer_id": offer.pk},
        {"transaction_id": ClickFactory(offer=offer).transaction_id},
        {"transaction_id": converted_click(offer), "event_id": event.pk},
        {"transaction_id": converted_click(offer), "event_name": "purchase"},
    ]
    payouts = Decimal(0)

    for params in forms:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/postback", {"secure": token, **params})
        sql = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
        body = response.json()
        payouts += Decimal(body["payout"])

        assert (response.status_code, body["record_status"], len(sql)) == (200, "approved", 1)
    used = cap_usage(made)
    # The warm-up's conversion and the first counted too.
    earlier = sum(
        Conversion.objects.filter(
            click__transaction_id__in=[warm.transaction_id, first["transaction_id"]]
        ).values_list("payout", flat=True)
    )
    assert used[made[0].pk] == start[made[0].pk] + 4
    assert used[made[1].pk] == start[made[1].pk] + payouts + earlier
    assert used[made[2].pk] == start[made[2].pk]


def test_a_full_cap_sends_the_postback_the_ordinary_way_which_records_it_capped(client, world):
    conversion, event, token, warm = world
    offer = conversion.offer
    full = OfferCap.objects.create(offer=offer, metric="conversions", period="day", limit=1)
    caps.counter_start(full)
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    assert cap_usage([full])[full.pk] >= full.limit

    response = client.get(
        "/postback", {"secure": token, "transaction_id": ClickFactory(offer=offer).transaction_id}
    )

    body = response.json()
    assert (response.status_code, body["record_status"], body["record_status_reason"]) == (
        200,
        "rejected",
        "cap_reached",
    )
    assert cap_usage([full])[full.pk] == full.limit


@pytest.mark.parametrize("form", ["offer URL", "global URL"])
def test_the_one_statement_path_gives_the_record_its_status_and_its_log_row_one_time(
    client, world, form
):
    conversion, event, token, warm = world
    offer = conversion.offer
    # The global URL with two offers of the advertiser: the candidates travel as JSON; the
    # offer URL's one candidate as plain parameters.
    OfferFactory(advertiser=offer.advertiser)
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    params = {"secure": token, "transaction_id": ClickFactory(offer=offer).transaction_id}
    if form == "offer URL":
        params["offer_id"] = offer.pk

    status, sql = statements(client, "/postback", params)

    assert (status, len(sql)) == (200, 1)
    record = Conversion.objects.get(click__transaction_id=params["transaction_id"])
    log = PostbackLog.objects.get(conversion=record)
    assert record.status_changed_at == record.created_at == log.created_at
    assert (record.offer_id, record.status, log.reason) == (offer.pk, "approved", "accepted")
