"""The one-statement path (tracking/postback.py): a postback that names its offer, judged on
cached definitions and written with the click's checks as the insert's conditions.

Every answer must be the one the spec's checks give in order, exactly as on the ordinary
path: these tests warm the cache first, so the one-statement path is what answers, and
each makes one of its conditions fail.
"""

from decimal import Decimal

import pytest

from offers.models import MoneyType
from offers.services import event_update
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
)
from tests.markers import requires_postgresql
from tracking.models import Conversion, EventRecord, PostbackLog
from tracking.services import generate_transaction_id

pytestmark = [pytest.mark.django_db, requires_postgresql]


@pytest.fixture
def network(client):
    """Advertiser A with offers one and two (an event each), advertiser B with offer three;
    every offer and its events in this process's cache."""
    one = OfferFactory()
    two = OfferFactory(advertiser=one.advertiser)
    three = OfferFactory()
    events = {offer.pk: EventFactory(offer=offer, name="purchase") for offer in (one, two, three)}
    for offer in (one, two, three):
        warm = ClickFactory(offer=offer)
        client.get(
            "/postback",
            {
                "secure": offer.advertiser.postback_token,
                "transaction_id": warm.transaction_id,
                "event_id": events[offer.pk].pk,
            },
        )
    PostbackLog.objects.all().delete()
    return one, two, three, events


def answer(client, token_of, transaction_id: str, **params) -> tuple[int, str]:  # noqa: ANN001
    """(status, reason) of a postback with the token of ``token_of``'s advertiser."""
    params |= {"secure": token_of.advertiser.postback_token, "transaction_id": transaction_id}
    response = client.get("/postback", params)
    return response.status_code, response.json()["reason"]


def converted(offer):  # noqa: ANN001, ANN201
    """A conversion of a new click on ``offer``."""
    return ConversionFactory(click=ClickFactory(offer=offer), offer=offer)


def test_a_conversion_naming_its_offer_is_accepted_and_logged_whole(client, network):
    one, *_ = network
    click = ClickFactory(offer=one)
    token = one.advertiser.postback_token

    response = client.get(
        "/postback",
        {
            "secure": token,
            "transaction_id": click.transaction_id,
            "offer_id": one.pk,
            "adv_sub": "order-1",
            "currency": "eur",
        },
    )

    body = response.json()
    conversion = Conversion.objects.get()
    assert response.status_code == 200
    assert body == {
        "status": "accepted",
        "reason": "accepted",
        "type": "conversion",
        "id": conversion.pk,
        "transaction_id": click.transaction_id,
        "offer_id": one.pk,
        "revenue": "5.00",
        "payout": "3.00",
        "currency": "EUR",
    }
    assert (conversion.click_id, conversion.publisher_id, conversion.adv_sub) == (
        click.pk,
        click.publisher_id,
        "order-1",
    )
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.conversion_id, log.event_record_id) == (
        "accepted",
        200,
        conversion.pk,
        None,
    )
    assert (log.advertiser_id, log.offer_id, log.click_id, log.event_id, log.type) == (
        one.advertiser_id,
        one.pk,
        click.pk,
        None,
        "conversion",
    )
    assert token not in str(log.params) and log.params["secure"].startswith(token[:4])


def test_an_event_by_id_is_accepted_with_its_conversion_linked(client, network):
    one, _, _, events = network
    conversion = converted(one)
    event = events[one.pk]

    status_reason = answer(client, one, conversion.click.transaction_id, event_id=event.pk)

    record = EventRecord.objects.get(click=conversion.click)
    assert status_reason == (200, "accepted")
    assert (record.event_id, record.conversion_id, record.payout) == (
        event.pk,
        conversion.pk,
        Decimal("1.00"),
    )
    assert PostbackLog.objects.get().event_record_id == record.pk


def test_offer_id_of_another_offer_of_the_same_advertiser_is_offer_mismatch(client, network):
    one, two, *_ = network
    click = ClickFactory(offer=two)

    assert answer(client, one, click.transaction_id, offer_id=one.pk) == (422, "offer_mismatch")
    assert not Conversion.objects.exists()


def test_an_event_id_of_another_offer_is_unknown_for_this_click(client, network):
    one, two, _, events = network
    conversion = converted(two)

    assert answer(client, one, conversion.click.transaction_id, event_id=events[one.pk].pk) == (
        404,
        "unknown_event",
    )
    assert not EventRecord.objects.filter(click=conversion.click).exists()


def test_a_click_of_another_advertisers_offer_is_invalid_secure(client, network):
    one, _, three, _ = network
    click = ClickFactory(offer=three)

    assert answer(client, one, click.transaction_id, offer_id=one.pk) == (403, "invalid_secure")
    assert not Conversion.objects.exists()


def test_an_unknown_transaction_naming_an_offer_is_unknown_transaction(client, network):
    one, *_ = network

    assert answer(client, one, generate_transaction_id(), offer_id=one.pk) == (
        404,
        "unknown_transaction",
    )
    assert PostbackLog.objects.get().reason == "unknown_transaction"


def test_an_event_before_its_conversion_is_no_conversion(client, network):
    one, _, _, events = network
    click = ClickFactory(offer=one)

    assert answer(
        client, one, click.transaction_id, event_id=events[one.pk].pk, offer_id=one.pk
    ) == (422, "no_conversion")


def test_a_second_conversion_naming_its_offer_is_a_duplicate(client, network):
    one, *_ = network
    conversion = converted(one)

    assert answer(client, one, conversion.click.transaction_id, offer_id=one.pk) == (
        409,
        "duplicate_conversion",
    )
    assert Conversion.objects.count() == 1


def test_a_second_event_is_a_duplicate_logged_once(client, network):
    one, _, _, events = network
    record = EventRecordFactory(
        event=events[one.pk],
        conversion=converted(one),
    )

    assert answer(client, one, record.click.transaction_id, event_id=record.event_id) == (
        409,
        "duplicate_event",
    )
    assert EventRecord.objects.filter(click=record.click).count() == 1
    assert list(PostbackLog.objects.values_list("reason", flat=True)) == ["duplicate_event"]


def test_an_event_edited_after_it_was_cached_pays_by_its_new_rules(client, network):
    one, _, _, events = network
    event = events[one.pk]
    conversion = converted(one)

    event_update(event=event, payout_value=Decimal("1.75"))
    status_reason = answer(client, one, conversion.click.transaction_id, event_id=event.pk)

    assert status_reason == (200, "accepted")
    assert EventRecord.objects.get(click=conversion.click).payout == Decimal("1.75")


def test_a_cps_event_without_amount_is_amount_required(client, network):
    one, _, _, events = network
    event_update(event=events[one.pk], revenue_type=MoneyType.CPS, revenue_value=Decimal("10"))
    event_id = events[one.pk].pk
    answer(client, one, converted(one).click.transaction_id, event_id=event_id, amount="1")
    again = converted(one)

    assert answer(client, one, again.click.transaction_id, event_id=event_id) == (
        422,
        "amount_required",
    )
