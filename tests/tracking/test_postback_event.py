"""Event postbacks through the real endpoint: event checks 7–12 of docs/postbacks.md."""

from decimal import Decimal

import pytest
from django.db import connection

from offers.models import Event, MoneyType
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
)
from tests.tracking.test_postback_conversion import recorded_just_before_the_write
from tracking.models import EventRecord, PostbackLog
from tracking.postback import postback_process

pytestmark = pytest.mark.django_db


def event_params(click, **extra: str) -> dict[str, str]:
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
        **extra,
    }


@pytest.fixture
def converted():
    """A click with its conversion, on an offer with a 'purchase' event (id known)."""
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, name="purchase")
    return conversion, event


def test_event_by_id_is_accepted_with_the_specs_json_shape(client, converted):
    conversion, event = converted

    response = client.get("/postback", event_params(conversion.click, event_id=str(event.pk)))

    assert response.status_code == 200
    record = EventRecord.objects.get()
    assert response.json() == {
        "status": "accepted",
        "reason": "accepted",
        "type": "event",
        "id": record.pk,
        "transaction_id": conversion.click.transaction_id,
        "offer_id": conversion.offer_id,
        "event_id": event.pk,
        "event_name": "purchase",
        "revenue": "2.00",
        "payout": "1.00",
        "currency": "USD",
        "record_status": "approved",
        "record_status_reason": "",
    }
    assert (record.event, record.conversion, record.click) == (
        event,
        conversion,
        conversion.click,
    )
    assert (record.offer_id, record.publisher_id) == (conversion.offer_id, conversion.publisher_id)
    assert record.allow_multiple is False
    log = PostbackLog.objects.get()
    assert (log.reason, log.type, log.event_record_id, log.event_id) == (
        "accepted",
        "event",
        record.pk,
        event.pk,
    )


def test_event_by_name_is_accepted(client, converted):
    conversion, event = converted

    response = client.get("/postback", event_params(conversion.click, event_name="purchase"))

    assert response.status_code == 200
    assert EventRecord.objects.get().event == event


def test_event_by_id_and_name_naming_the_same_event_is_accepted(client, converted):
    conversion, event = converted

    response = client.get(
        "/postback",
        event_params(conversion.click, event_id=str(event.pk), event_name="purchase"),
    )

    assert response.status_code == 200


def test_event_name_with_spaces_and_unicode_matches_exactly(client):
    conversion = ConversionFactory()
    EventFactory(offer=conversion.offer, name="Achat réussi 2")

    response = client.get("/postback", event_params(conversion.click, event_name="Achat réussi 2"))

    assert response.status_code == 200


@pytest.mark.parametrize("name", ["Purchase", "PURCHASE", "purchase ", " purchase", "purchas"])
def test_event_name_must_match_exactly_and_case_sensitively(client, converted, name):
    conversion, _ = converted

    response = client.get("/postback", event_params(conversion.click, event_name=name))

    assert response.status_code == 404
    assert response.json()["reason"] == "unknown_event"
    assert not EventRecord.objects.exists()


def test_an_event_of_another_offer_is_unknown(client, converted):
    conversion, _ = converted
    foreign = EventFactory(offer=OfferFactory(advertiser=conversion.offer.advertiser))

    by_id = client.get("/postback", event_params(conversion.click, event_id=str(foreign.pk)))
    by_name = client.get("/postback", event_params(conversion.click, event_name=foreign.name))

    assert (by_id.status_code, by_name.status_code) == (404, 404)
    assert by_id.json()["reason"] == by_name.json()["reason"] == "unknown_event"


def test_an_event_id_beyond_any_id_is_unknown_not_an_error(client, converted):
    conversion, _ = converted

    response = client.get("/postback", event_params(conversion.click, event_id="9" * 30))

    assert response.status_code == 404
    assert response.json()["reason"] == "unknown_event"


def test_a_known_id_with_an_unknown_name_is_unknown_event(client, converted):
    conversion, event = converted

    response = client.get(
        "/postback", event_params(conversion.click, event_id=str(event.pk), event_name="nope")
    )

    assert response.status_code == 404
    assert response.json()["reason"] == "unknown_event"


def test_id_and_name_of_two_different_events_is_422_event_mismatch(client, converted):
    conversion, event = converted
    EventFactory(offer=conversion.offer, name="signup")

    response = client.get(
        "/postback", event_params(conversion.click, event_id=str(event.pk), event_name="signup")
    )

    assert response.status_code == 422
    assert response.json()["reason"] == "event_mismatch"
    assert not EventRecord.objects.exists()


def test_event_before_its_conversion_is_422_no_conversion(client):
    click = ClickFactory()
    event = EventFactory(offer=click.offer)

    response = client.get("/postback", event_params(click, event_id=str(event.pk)))

    assert response.status_code == 422
    assert response.json() == {
        "status": "rejected",
        "reason": "no_conversion",
        "message": "No conversion is recorded for this transaction_id; events need a "
        "conversion first.",
    }
    assert not EventRecord.objects.exists()


def test_unknown_event_and_mismatch_come_before_no_conversion(client):
    click = ClickFactory()
    first = EventFactory(offer=click.offer, name="first")
    EventFactory(offer=click.offer, name="second")

    unknown = client.get("/postback", event_params(click, event_name="third"))
    mismatch = client.get(
        "/postback", event_params(click, event_id=str(first.pk), event_name="second")
    )

    assert unknown.json()["reason"] == "unknown_event"
    assert mismatch.json()["reason"] == "event_mismatch"


def test_a_single_fire_event_is_recorded_once_per_click(client, converted):
    conversion, event = converted
    params = event_params(conversion.click, event_id=str(event.pk))

    first = client.get("/postback", params)
    second = client.get("/postback", {**params, "adv_sub": "another-order"})

    assert (first.status_code, second.status_code) == (200, 409)
    assert second.json()["reason"] == "duplicate_event"
    assert EventRecord.objects.count() == 1


def test_the_same_single_fire_event_on_two_clicks_is_two_records(client, converted):
    conversion, event = converted
    other = ConversionFactory(click__offer=conversion.offer)

    for click in (conversion.click, other.click):
        assert (
            client.get("/postback", event_params(click, event_id=str(event.pk))).status_code == 200
        )
    assert EventRecord.objects.count() == 2


def test_a_multiple_event_without_adv_sub_records_every_postback(client, converted):
    conversion, event = converted
    Event.objects.filter(pk=event.pk).update(allow_multiple=True)

    answers = [
        client.get("/postback", event_params(conversion.click, event_id=str(event.pk)))
        for _ in range(3)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert EventRecord.objects.filter(allow_multiple=True).count() == 3


def test_a_multiple_event_dedupes_by_adv_sub(client, converted):
    conversion, event = converted
    Event.objects.filter(pk=event.pk).update(allow_multiple=True)
    params = event_params(conversion.click, event_id=str(event.pk))

    first = client.get("/postback", {**params, "adv_sub": "order-1"})
    again = client.get("/postback", {**params, "adv_sub": "order-1"})
    other = client.get("/postback", {**params, "adv_sub": "order-2"})
    case = client.get("/postback", {**params, "adv_sub": "ORDER-1"})

    assert [r.status_code for r in (first, again, other, case)] == [200, 409, 200, 200]
    assert again.json()["reason"] == "duplicate_event"
    assert "adv_sub" in again.json()["message"]
    assert sorted(EventRecord.objects.values_list("adv_sub", flat=True)) == [
        "ORDER-1",
        "order-1",
        "order-2",
    ]


def test_an_event_switched_from_multiple_to_single_refuses_another_record(client, converted):
    conversion, event = converted
    EventRecordFactory(conversion=conversion, event=event, allow_multiple=True, adv_sub="old-order")

    response = client.get(
        "/postback", event_params(conversion.click, event_id=str(event.pk), adv_sub="new-order")
    )

    assert response.status_code == 409
    assert response.json()["reason"] == "duplicate_event"


def test_cps_event_without_amount_is_422_amount_required(client, converted):
    conversion, event = converted
    Event.objects.filter(pk=event.pk).update(payout_type=MoneyType.CPS, payout_value=10)

    response = client.get("/postback", event_params(conversion.click, event_id=str(event.pk)))

    assert response.status_code == 422
    assert response.json()["reason"] == "amount_required"
    assert not EventRecord.objects.exists()


def test_a_duplicate_event_is_reported_before_a_missing_amount(client, converted):
    conversion, event = converted
    Event.objects.filter(pk=event.pk).update(revenue_type=MoneyType.CPS, revenue_value=10)
    EventRecordFactory(conversion=conversion, event=event)

    response = client.get("/postback", event_params(conversion.click, event_id=str(event.pk)))

    assert response.status_code == 409
    assert response.json()["reason"] == "duplicate_event"


@pytest.mark.parametrize(
    ("recorded_adv_sub", "reason"), [("order-1", "duplicate_event"), ("order-2", "amount_required")]
)
def test_a_repeatable_cps_event_without_amount_is_a_duplicate_only_with_the_same_adv_sub(
    client, converted, recorded_adv_sub, reason
):
    conversion, event = converted
    Event.objects.filter(pk=event.pk).update(
        allow_multiple=True, revenue_type=MoneyType.CPS, revenue_value=10
    )
    EventRecordFactory(conversion=conversion, event=event, adv_sub=recorded_adv_sub)

    response = client.get(
        "/postback", event_params(conversion.click, event_id=str(event.pk), adv_sub="order-1")
    )

    assert response.json()["reason"] == reason
    assert EventRecord.objects.count() == 1


def test_a_dry_run_of_a_recorded_event_is_the_duplicate_answer(converted):
    conversion, event = converted
    EventRecordFactory(conversion=conversion, event=event)

    outcome = postback_process(
        params=event_params(conversion.click, event_name="purchase"), dry_run=True
    )

    assert (outcome.status_code, outcome.reason) == (409, "duplicate_event")
    assert not PostbackLog.objects.exists()


def test_no_conversion_is_reported_before_a_missing_amount(client):
    click = ClickFactory()
    event = EventFactory(offer=click.offer, revenue_type=MoneyType.CPS, revenue_value=10)

    response = client.get("/postback", event_params(click, event_id=str(event.pk)))

    assert response.json()["reason"] == "no_conversion"


@pytest.mark.parametrize(
    ("revenue", "payout", "amount", "expected_revenue", "expected_payout"),
    [
        ((MoneyType.CPS, "10"), (MoneyType.CPA, "1.00"), "19.99", "2.00", "1.00"),
        ((MoneyType.CPS, "10"), (MoneyType.CPS, "5"), "19.99", "2.00", "1.00"),  # 0.9995 → 1.00
        ((MoneyType.CPL, "3.10"), (MoneyType.FIXED, "0.10"), None, "3.10", "0.10"),
        ((MoneyType.CPS, "2.5"), (MoneyType.CPS, "0"), "0.2", "0.01", "0.00"),  # 0.005 → 0.01
    ],
)
def test_event_money_follows_the_spec_table(
    client, revenue, payout, amount, expected_revenue, expected_payout
):
    conversion = ConversionFactory()
    event = EventFactory(
        offer=conversion.offer,
        revenue_type=revenue[0],
        revenue_value=Decimal(revenue[1]),
        payout_type=payout[0],
        payout_value=Decimal(payout[1]),
    )
    extra = {"amount": amount} if amount else {}

    response = client.get(
        "/postback", event_params(conversion.click, event_id=str(event.pk), **extra)
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["revenue"], body["payout"]) == (expected_revenue, expected_payout)
    record = EventRecord.objects.get()
    assert (record.revenue, record.payout) == (Decimal(expected_revenue), Decimal(expected_payout))
    assert record.amount == (Decimal(amount) if amount else None)


def test_event_currency_defaults_to_the_offers_and_is_stored_upper_case(client):
    conversion = ConversionFactory(click__offer__currency="EUR")
    event = EventFactory(offer=conversion.offer)
    Event.objects.filter(pk=event.pk).update(allow_multiple=True)
    params = event_params(conversion.click, event_id=str(event.pk))

    default = client.get("/postback", params)
    sent = client.get("/postback", {**params, "currency": "jpy"})

    assert (default.json()["currency"], sent.json()["currency"]) == ("EUR", "JPY")
    assert sorted(EventRecord.objects.values_list("currency", flat=True)) == ["EUR", "JPY"]


def test_an_event_record_keeps_its_money_when_the_event_changes_later(client, converted):
    conversion, event = converted
    client.get("/postback", event_params(conversion.click, event_id=str(event.pk)))

    Event.objects.filter(pk=event.pk).update(revenue_value=Decimal("50.00"))

    assert EventRecord.objects.get().revenue == Decimal("2.00")


def test_event_postback_with_offer_id_of_another_offer_is_a_mismatch(client, converted):
    conversion, event = converted
    other = OfferFactory(advertiser=conversion.offer.advertiser)

    response = client.get(
        "/postback",
        event_params(conversion.click, event_id=str(event.pk), offer_id=str(other.pk)),
    )

    assert response.json()["reason"] == "offer_mismatch"


def test_event_dry_run_returns_the_decision_and_writes_nothing(converted):
    conversion, event = converted

    outcome = postback_process(
        params=event_params(conversion.click, event_name="purchase"), dry_run=True
    )

    assert outcome.status_code == 200
    assert outcome.body["id"] is None
    assert outcome.body["event_id"] == event.pk
    assert not EventRecord.objects.exists()
    assert not PostbackLog.objects.exists()


def test_an_event_recorded_between_the_read_and_the_write_is_the_duplicate_answer(
    client, converted
):
    conversion, event = converted
    race = recorded_just_before_the_write(
        lambda: EventRecordFactory(conversion=conversion, event=event)
    )

    with connection.execute_wrapper(race):
        response = client.get("/postback", event_params(conversion.click, event_name="purchase"))

    assert (response.status_code, response.json()["reason"]) == (409, "duplicate_event")
    assert EventRecord.objects.count() == 1
    assert PostbackLog.objects.get().reason == "duplicate_event"
