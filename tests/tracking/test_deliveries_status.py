"""Status-driven deliveries (SPEC "Publisher postbacks (outbound)"): the ``status`` trigger
fires once per history entry and supersedes an undelivered earlier one; ``conversion`` and
``event`` postbacks fire on a record's first approval, by any path, once."""

import pytest
from pytest_httpserver import HTTPServer

from offers.models import PublisherPostback
from tests.factories import ConversionFactory, EventFactory
from tests.tracking.deliveries_helpers import run_worker
from tracking.deliveries import status_reason_macro
from tracking.models import Delivery, EventRecord, StatusChange
from tracking.status import record_status_change

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "?s={status}&r={status_reason}&t={type}&id={record_id}&d={delivery_id}"


def test_a_status_postback_fires_the_status_postback_with_its_status(
    client, httpserver: HTTPServer
):
    conversion = ConversionFactory()
    PublisherPostback.objects.create(
        publisher=conversion.publisher,
        trigger="status",
        url=httpserver.url_for("/status") + QUERY,
    )
    httpserver.expect_request("/status").respond_with_data("ok")

    answer = client.get(
        "/postback/status",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "status": "rejected",
            "reason": "chargeback on order 77 (free text)",
        },
    )

    assert answer.status_code == 200, answer.json()
    (delivery,) = Delivery.objects.all()
    change = StatusChange.objects.get()
    assert (delivery.trigger, delivery.status_change_id, delivery.conversion_id) == (
        "status",
        change.pk,
        conversion.pk,
    )
    run_worker()
    ((request, _),) = httpserver.log
    # Free text never reaches the publisher: only who wrote it.
    assert dict(request.args) == {
        "s": "rejected",
        "r": "advertiser",
        "t": "conversion",
        "id": str(conversion.pk),
        "d": str(delivery.pk),
    }


def test_a_later_change_supersedes_a_status_delivery_not_yet_delivered():
    conversion = ConversionFactory()
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="status", url="https://p.example/s" + QUERY
    )

    record_status_change(record=conversion, status="pending", source="admin", reason="check")
    record_status_change(record=conversion, status="rejected", source="admin")

    first, second = Delivery.objects.order_by("id")
    assert (first.outcome, first.next_attempt_at) == ("superseded", None)
    assert second.outcome == "queued"
    assert "s=rejected&r=&" in second.url
    assert "s=pending&r=manager&" in first.url


def test_acceptance_itself_fires_no_status_postback(client):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer)
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="status", url="https://p.example/s"
    )

    answer = client.get(
        "/postback",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "event_id": event.pk,
        },
    )

    assert answer.status_code == 200
    assert not Delivery.objects.exists()


def test_an_event_accepted_pending_fires_its_event_postback_when_first_approved(client):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer)
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="event", url="https://p.example/e" + QUERY
    )
    record_status_change(record=conversion, status="pending", source="admin")

    answer = client.get(
        "/postback",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "event_id": event.pk,
        },
    )
    assert answer.status_code == 200
    assert answer.json()["record_status"] == "pending"
    assert not Delivery.objects.exists()  # not approved: nothing yet

    # Approving the conversion approves its event (the rule), which fires its postback.
    record_status_change(record=conversion, status="approved", source="admin")
    record = EventRecord.objects.get()
    assert record.status == "approved"
    (delivery,) = Delivery.objects.all()
    assert (delivery.trigger, delivery.event_record_id) == ("event", record.pk)
    assert "s=approved&" in delivery.url

    # Approved again after a rejection: it fired once, it does not fire again.
    record_status_change(record=conversion, status="rejected", source="admin")
    record_status_change(record=conversion, status="approved", source="admin")
    assert Delivery.objects.count() == 1


def test_a_conversion_fires_once_however_often_it_is_approved_again():
    conversion = ConversionFactory()
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="conversion", url="https://p.example/c"
    )
    record_status_change(record=conversion, status="pending", source="admin")
    record_status_change(record=conversion, status="approved", source="admin")
    record_status_change(record=conversion, status="pending", source="admin")
    record_status_change(record=conversion, status="approved", source="admin")

    (delivery,) = Delivery.objects.all()
    assert (delivery.trigger, delivery.conversion_id) == ("conversion", conversion.pk)


def test_status_changes_of_test_clicks_fire_nothing():
    conversion = ConversionFactory(click__is_test=True)
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="status", url="https://p.example/s"
    )

    record_status_change(record=conversion, status="rejected", source="admin")

    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("reason", "source", "macro"),
    [
        ("conversion_rejected", "rule", "conversion_rejected"),
        ("cap_reached", "rule", "cap_reached"),
        ("order refunded", "postback", "advertiser"),
        ("fraud, see ticket 12", "admin", "manager"),
        ("checked", "api", "manager"),
        ("", "admin", ""),
    ],
)
def test_status_reason_carries_platform_codes_or_who_wrote_the_text(reason, source, macro):
    assert status_reason_macro(reason=reason, source=source) == macro
