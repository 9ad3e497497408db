"""Publisher postbacks from end to end: a postback accepted at /postback writes its
delivery with the record, and the worker calls the publisher's real server (on loopback)
with the macros filled."""

from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_httpserver import HTTPServer

from offers.models import PublisherPostback
from tests.deliveries_macros import ALL_MACROS_QUERY
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
    PublisherFactory,
)
from tests.markers import ON_POSTGRESQL
from tests.tracking.deliveries_helpers import run_worker
from tracking.models import Conversion, Delivery, EventRecord

pytestmark = pytest.mark.django_db(transaction=True)


def postback(publisher, httpserver: HTTPServer, **fields) -> PublisherPostback:  # noqa: ANN001
    url = fields.pop("url", httpserver.url_for("/pb") + "?" + ALL_MACROS_QUERY)
    return PublisherPostback.objects.create(publisher=publisher, url=url, **fields)


def received(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [
        {name: values[0] for name, values in parse_qs(r.query_string.decode(), True).items()}
        | {"path": r.path}
        for r, _ in httpserver.log
    ]


def test_an_accepted_conversion_reaches_the_publisher_with_every_macro_filled(client, httpserver):
    offer = OfferFactory(name="Summer & Sale", payout_value=Decimal("3.50"), currency="EUR")
    click = ClickFactory(offer=offer, aff_sub="a b&c=d", aff_sub3="ü/ß", source="{x}#")
    postback(click.publisher, httpserver, trigger="conversion")
    httpserver.expect_request("/pb").respond_with_data("OK")

    answer = client.get(
        "/postback",
        {"secure": offer.advertiser.postback_token, "transaction_id": click.transaction_id},
    )
    assert answer.status_code == 200
    conversion = Conversion.objects.get()
    delivery = Delivery.objects.get()
    assert (delivery.trigger, delivery.record_type, delivery.conversion_id) == (
        "conversion",
        "conversion",
        conversion.pk,
    )
    assert delivery.outcome == "queued"

    assert run_worker() == 1

    (got,) = received(httpserver)
    assert got == {
        "path": "/pb",
        "transaction_id": click.transaction_id,
        "offer_id": str(offer.pk),
        "offer_name": "Summer & Sale",
        "aff_id": str(click.publisher_id),
        "aff_sub": "a b&c=d",
        "aff_sub2": "",
        "aff_sub3": "ü/ß",
        "aff_sub4": "",
        "aff_sub5": "",
        "source": "{x}#",
        "type": "conversion",
        "event_id": "",
        "event_name": "",
        "payout": "3.50",
        "currency": "EUR",
        "status": "approved",
        "status_reason": "",
        "record_id": str(conversion.pk),
        "delivery_id": str(delivery.pk),
        "timestamp": str(int(conversion.created_at.timestamp())),
    }
    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempt_count, delivery.next_attempt_at) == (
        "delivered",
        1,
        None,
    )
    (attempt,) = delivery.attempts.all()
    assert (attempt.status_code, attempt.response, attempt.error) == (200, "OK", "")


def test_an_accepted_event_reaches_the_event_postback_not_the_conversion_one(client, httpserver):
    conversion = ConversionFactory(click__aff_sub="s1")
    event = EventFactory(offer=conversion.offer, name="first purchase", payout_value=Decimal("1"))
    publisher = conversion.publisher
    postback(publisher, httpserver, trigger="conversion", url=httpserver.url_for("/conv"))
    postback(publisher, httpserver, trigger="event", offer=conversion.offer)
    httpserver.expect_request("/pb").respond_with_data("OK")

    answer = client.get(
        "/postback",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "event_id": event.pk,
        },
    )

    assert answer.status_code == 200
    record = EventRecord.objects.get()
    delivery = Delivery.objects.get()
    assert (delivery.trigger, delivery.record_type, delivery.event_record_id) == (
        "event",
        "event",
        record.pk,
    )
    run_worker()
    (got,) = received(httpserver)
    assert (got["type"], got["event_id"], got["event_name"], got["payout"]) == (
        "event",
        str(event.pk),
        "first purchase",
        "1.00",
    )
    assert (got["record_id"], got["delivery_id"], got["aff_sub"]) == (
        str(record.pk),
        str(delivery.pk),
        "s1",
    )


def test_only_the_most_specific_postback_of_a_publisher_fires(client, httpserver):
    conversion = ConversionFactory()
    offer, publisher = conversion.offer, conversion.publisher
    event = EventFactory(offer=offer)
    other_publisher = PublisherFactory()
    postback(publisher, httpserver, trigger="event", url=httpserver.url_for("/any-offer"))
    postback(publisher, httpserver, trigger="event", offer=offer, url=httpserver.url_for("/any"))
    one = postback(publisher, httpserver, trigger="event", offer=offer, event=event)
    # Another publisher's postback never fires for this publisher's records.
    postback(other_publisher, httpserver, trigger="event", url=httpserver.url_for("/other"))
    httpserver.expect_request("/pb").respond_with_data("OK")

    client.get(
        "/postback",
        {
            "secure": offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "event_name": event.name,
        },
    )

    assert list(Delivery.objects.values_list("postback_id", flat=True)) == [one.pk]
    run_worker()
    assert [got["path"] for got in received(httpserver)] == ["/pb"]


def test_nothing_is_written_when_no_postback_matches_or_the_click_is_a_test(client, httpserver):
    offer = OfferFactory()
    click, test_click = ClickFactory(offer=offer), ClickFactory(offer=offer, is_test=True)
    postback(test_click.publisher, httpserver, trigger="conversion")
    postback(click.publisher, httpserver, trigger="event")  # another trigger
    postback(click.publisher, httpserver, trigger="conversion", enabled=False)
    token = offer.advertiser.postback_token

    for clicked in (click, test_click):
        answer = client.get(
            "/postback", {"secure": token, "transaction_id": clicked.transaction_id}
        )
        assert answer.status_code == 200

    assert Conversion.objects.count() == 2
    assert not Delivery.objects.exists()


def test_a_rejected_postback_writes_no_delivery(client, httpserver):
    conversion = ConversionFactory()
    postback(conversion.publisher, httpserver, trigger="conversion")

    answer = client.get(
        "/postback",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
        },
    )

    assert answer.status_code == 409
    assert not Delivery.objects.exists()


def test_the_one_statement_path_writes_the_delivery_in_the_records_statement(client, httpserver):
    """PostgreSQL: a postback naming its offer, with the definitions cached, is one
    statement, and its delivery is written by that statement (SQLite: the ordinary path)."""
    offer = OfferFactory()
    publisher = PublisherFactory()
    warm, click = (ClickFactory(offer=offer, publisher=publisher) for _ in range(2))
    click.aff_sub = "x y"
    click.save()
    postback(publisher, httpserver, trigger="conversion")
    token = offer.advertiser.postback_token
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})

    with CaptureQueriesContext(connection) as captured:
        answer = client.get(
            "/postback",
            {"secure": token, "transaction_id": click.transaction_id, "offer_id": offer.pk},
        )

    assert answer.status_code == 200
    if ON_POSTGRESQL:
        (statement,) = captured.captured_queries
        assert "tracking_delivery" in statement["sql"]
    delivery = Delivery.objects.get(transaction_id=click.transaction_id)
    conversion = Conversion.objects.get(click=click)
    assert f"record_id={conversion.pk}&delivery_id={delivery.pk}&" in delivery.url
    assert "aff_sub=x%20y&" in delivery.url
    assert f"aff_id={publisher.pk}&" in delivery.url


def test_a_global_url_postback_fires_the_postback_of_the_clicks_own_offer(client, httpserver):
    """The one-statement path tries each of the advertiser's offers (PostgreSQL); the
    delivery is the one for the offer the click turns out to be for."""
    first = OfferFactory()
    second = OfferFactory(advertiser=first.advertiser)
    publisher = PublisherFactory()
    postback(publisher, httpserver, trigger="conversion", offer=first, url="https://a.example/")
    wanted = postback(publisher, httpserver, trigger="conversion", offer=second)
    token = first.advertiser.postback_token
    warm = ClickFactory(offer=first, publisher=publisher)
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})
    click = ClickFactory(offer=second, publisher=publisher)

    with CaptureQueriesContext(connection) as captured:
        answer = client.get("/postback", {"secure": token, "transaction_id": click.transaction_id})

    assert answer.status_code == 200
    if ON_POSTGRESQL:
        assert len(captured.captured_queries) == 1
    delivery = Delivery.objects.get(transaction_id=click.transaction_id)
    assert (delivery.postback_id, delivery.offer_id) == (wanted.pk, second.pk)
    assert f"offer_id={second.pk}&" in delivery.url


def test_without_a_matching_postback_the_tracking_path_runs_its_statement_unchanged(
    client, httpserver
):
    """PostgreSQL: which postbacks exist comes from the definitions cache, so a postback
    that fires nothing costs no statement and no probe of the delivery table."""
    offer = OfferFactory()
    warm, click = ClickFactory(offer=offer), ClickFactory(offer=offer)
    # Another publisher's postback on this offer does not match this click's publisher.
    other = postback(PublisherFactory(), httpserver, trigger="conversion", offer=offer)
    token = offer.advertiser.postback_token
    client.get("/postback", {"secure": token, "transaction_id": warm.transaction_id})

    with CaptureQueriesContext(connection) as captured:
        answer = client.get(
            "/postback",
            {"secure": token, "transaction_id": click.transaction_id, "offer_id": offer.pk},
        )

    assert answer.status_code == 200
    assert not Delivery.objects.exists()
    if ON_POSTGRESQL:
        assert len(captured.captured_queries) == 1
        # The other publisher's row travels with the statement (the click decides).
        assert "tracking_delivery" in captured.captured_queries[0]["sql"]
    other.delete()
    fresh = ClickFactory(offer=offer)
    client.get(
        "/postback", {"secure": token, "transaction_id": ClickFactory(offer=offer).transaction_id}
    )

    with CaptureQueriesContext(connection) as captured:
        answer = client.get(
            "/postback",
            {"secure": token, "transaction_id": fresh.transaction_id, "offer_id": offer.pk},
        )

    assert answer.status_code == 200
    if ON_POSTGRESQL:
        assert len(captured.captured_queries) == 1
        assert "tracking_delivery" not in captured.captured_queries[0]["sql"]
