"""Publisher postbacks and the offer rules (SPEC "Caps, windows and postback security"): a
conversion or event postback fires only for a record recorded approved; one a cap or
``min_conversion_seconds`` records pending or rejected fires on its first approval; records
of test clicks fire nothing; an early event fires when it is judged approved."""

from decimal import Decimal

import pytest

from offers.models import OfferCap, PublisherPostback
from tests.factories import ClickFactory, EventFactory, OfferFactory
from tracking import caps
from tracking.models import Conversion, Delivery, EventRecord
from tracking.status import record_status_change

pytestmark = pytest.mark.django_db


def conversion_postback(click) -> PublisherPostback:  # noqa: ANN001
    return PublisherPostback.objects.create(
        publisher=click.publisher,
        trigger="conversion",
        url="https://publisher.example/pb?t={transaction_id}&s={status}",
    )


def cap(offer, *, mode: str) -> OfferCap:  # noqa: ANN001
    made = OfferCap.objects.create(
        offer=offer, metric="conversions", period="day", limit=1, mode=mode
    )
    caps.counter_start(made)
    return made


def convert(client, click):  # noqa: ANN001, ANN201
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    return client.get("/postback", params).json()


@pytest.mark.parametrize(("mode", "status"), [("hard", "rejected"), ("soft", "pending")])
def test_a_conversion_a_full_cap_records_pending_or_rejected_fires_no_delivery(
    client, mode, status
):
    offer = OfferFactory()
    cap(offer, mode=mode)
    first, second = ClickFactory(offer=offer), ClickFactory(offer=offer)
    conversion_postback(first)
    conversion_postback(second)

    assert convert(client, first)["record_status"] == "approved"
    capped = convert(client, second)

    assert (capped["record_status"], capped["record_status_reason"]) == (status, "cap_reached")
    fired = Delivery.objects.values_list("conversion__click_id", flat=True)
    assert list(fired) == [first.pk]


def test_a_capped_conversion_fires_its_delivery_when_first_approved(client):
    offer = OfferFactory()
    cap(offer, mode="soft")
    first, second = ClickFactory(offer=offer), ClickFactory(offer=offer)
    conversion_postback(second)
    convert(client, first)
    convert(client, second)
    held = Conversion.objects.get(click=second)
    assert held.status == "pending" and not Delivery.objects.exists()

    record_status_change(record=held, status="approved", source="admin")

    delivery = Delivery.objects.get()
    assert (delivery.conversion_id, delivery.trigger) == (held.pk, "conversion")
    assert "s=approved" in delivery.url


def test_a_conversion_rejected_as_too_fast_fires_no_delivery(client):
    click = ClickFactory(offer=OfferFactory(min_conversion_seconds=3600))
    conversion_postback(click)

    answer = convert(client, click)

    assert (answer["record_status"], answer["record_status_reason"]) == ("rejected", "too_fast")
    assert not Delivery.objects.exists()


def test_a_test_clicks_conversion_ignores_the_caps_and_fires_no_delivery(client):
    offer = OfferFactory()
    cap(offer, mode="hard")
    click = ClickFactory(offer=offer, is_test=True)
    conversion_postback(click)

    assert convert(client, click)["record_status"] == "approved"
    assert not Delivery.objects.exists()


def test_an_early_event_judged_approved_fires_its_event_postback(client):
    offer = OfferFactory()
    event = EventFactory(offer=offer, name="install", revenue_value=Decimal("1"))
    event.wait_for_conversion_minutes = 60
    event.save()
    click = ClickFactory(offer=offer)
    PublisherPostback.objects.create(
        publisher=click.publisher,
        trigger="event",
        url="https://publisher.example/ev?e={event_name}",
    )
    params = {"secure": offer.advertiser.postback_token, "transaction_id": click.transaction_id}
    waiting = client.get("/postback", params | {"event_name": "install"})
    assert waiting.status_code == 202 and not Delivery.objects.exists()

    convert(client, click)

    record = EventRecord.objects.get()
    delivery = Delivery.objects.get(trigger="event")
    assert (delivery.event_record_id, record.status) == (record.pk, "approved")
    assert "e=install" in delivery.url
