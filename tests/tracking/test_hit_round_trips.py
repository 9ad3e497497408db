"""What a hit costs the database: the statements each answer sends, counted for real.

On PostgreSQL, with the definitions cached, a postback is at most two statements whatever
its answer (the click with the definitions version; then the record and its log row, or
only the log row); one when it names its offer and is accepted; a click is one. The
test's own transaction adds savepoints around writes, which are not counted here:
outside a test they do not exist.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ClickFactory, ConversionFactory, EventFactory
from tests.markers import requires_postgresql
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


def test_with_the_definitions_cached_a_postback_is_one_or_two_statements(client, world):
    conversion, event, token, warm = world
    offer = conversion.offer_id
    fresh, other, unconverted = (ClickFactory(offer=conversion.offer) for _ in range(3))
    converted = {"secure": token, "transaction_id": conversion.click.transaction_id}
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id, "event_id": 1})
    # (case, params, status, statements): accepted postbacks that name their offer (the
    # generated URLs carry offer_id, event URLs also event_id) are one statement; every other
    # answer is the click read, then the write.
    cases = [
        (
            "accepted conversion, offer_id sent",
            {"secure": token, "transaction_id": fresh.transaction_id, "offer_id": offer},
            200,
            1,
        ),
        ("accepted conversion", {"secure": token, "transaction_id": other.transaction_id}, 200, 2),
        ("accepted event", {**converted, "event_id": event.pk}, 200, 1),
        ("duplicate event", {**converted, "event_id": event.pk}, 409, 2),
        ("duplicate conversion", {**converted, "offer_id": offer}, 409, 2),
        (
            "unknown transaction",
            {"secure": token, "transaction_id": generate_transaction_id(), "offer_id": offer},
            404,
            2,
        ),
        (
            "no conversion",
            {
                "secure": token,
                "transaction_id": unconverted.transaction_id,
                "event_name": "purchase",
            },
            422,
            2,
        ),
        ("unknown event", {**converted, "event_name": "Purchase"}, 404, 2),
        ("offer mismatch", {**converted, "offer_id": "999999"}, 422, 2),
    ]

    for case, params, expected, count in cases:
        status, sql = statements(client, "/postback", params)

        assert (case, status, len(sql)) == (case, expected, count), sql


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
