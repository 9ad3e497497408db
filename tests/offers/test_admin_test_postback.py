"""The offer page's Test postback tab (tracking/admin_views.py): test clicks, dry runs, firing."""

import json
from decimal import Decimal

import pytest
from django.conf import settings

from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
    PublisherFactory,
)
from tracking.models import Click, Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def post(client, url: str, payload: object):  # noqa: ANN001, ANN201
    return client.post(url, json.dumps(payload), content_type="application/json")


def click_url(offer) -> str:  # noqa: ANN001
    return f"/admin/tracking/test-postback/{offer.pk}/click/"


def send_url(offer) -> str:  # noqa: ANN001
    return f"/admin/tracking/test-postback/{offer.pk}/send/"


def test_the_offer_page_calls_the_test_postback_views(manager_admin):
    offer = OfferFactory()

    page = manager_admin.get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()

    assert f'data-click-url="{click_url(offer)}"' in page
    assert f'data-send-url="{send_url(offer)}"' in page


def test_a_test_click_goes_to_the_test_publisher_when_none_is_chosen(manager_admin):
    offer = OfferFactory()

    response = post(manager_admin, click_url(offer), {"publisher_id": ""})

    assert response.status_code == 201
    click = Click.objects.get(transaction_id=response.json()["transaction_id"])
    assert click.is_test is True
    assert (click.offer, click.publisher.name) == (offer, "Test publisher")


def test_a_test_click_uses_the_chosen_publisher(manager_admin):
    offer = OfferFactory()
    publisher = PublisherFactory()

    response = post(manager_admin, click_url(offer), {"publisher_id": str(publisher.pk)})

    assert response.status_code == 201
    assert Click.objects.get().publisher == publisher


def test_a_paused_offer_refuses_test_clicks_with_the_reason(manager_admin):
    offer = OfferFactory(status="paused")

    response = post(manager_admin, click_url(offer), {})

    assert response.status_code == 409
    assert "paused" in response.json()["error"]
    assert not Click.objects.exists()


def test_a_dry_run_shows_the_url_and_decision_and_records_nothing(manager_admin):
    offer = OfferFactory(parameters={"amount": "{revenue}"}, revenue_value=Decimal("5.00"))
    click = ClickFactory(offer=offer, is_test=True)

    response = post(
        manager_admin,
        send_url(offer),
        {"target": "conversion", "transaction_id": click.transaction_id, "amount": "19.99"},
    )

    assert response.status_code == 200
    data = response.json()
    assert data["dry_run"] is True
    assert (data["status_code"], data["reason"]) == (200, "accepted")
    assert data["body"]["revenue"] == "5.00"
    assert data["url"] == (
        f"{settings.TRACKING_BASE_URL}/postback?secure={offer.advertiser.postback_token}"
        f"&transaction_id={click.transaction_id}&offer_id={offer.pk}&amount=19.99"
    )
    assert not Conversion.objects.exists()
    assert not PostbackLog.objects.exists()


def test_a_dry_run_explains_a_rejection_with_its_reason(manager_admin):
    offer = OfferFactory()
    event = EventFactory(offer=offer, name="purchase")
    click = ClickFactory(offer=offer)

    response = post(
        manager_admin,
        send_url(offer),
        {"target": str(event.pk), "transaction_id": click.transaction_id},
    )

    data = response.json()
    assert (data["status_code"], data["reason"]) == (422, "no_conversion")
    assert "conversion first" in data["body"]["message"]
    assert f"event_id={event.pk}&event_name=purchase" in data["url"]
    assert not PostbackLog.objects.exists()


def test_firing_for_real_records_the_conversion_and_its_log(manager_admin):
    offer = OfferFactory()
    click = ClickFactory(offer=offer, is_test=True)

    response = post(
        manager_admin,
        send_url(offer),
        {"target": "conversion", "transaction_id": click.transaction_id, "dry_run": False},
    )

    data = response.json()
    assert (data["status_code"], data["reason"]) == (200, "accepted")
    conversion = Conversion.objects.get(click=click)
    assert data["body"]["id"] == conversion.pk
    log = PostbackLog.objects.get()
    assert log.conversion == conversion
    assert log.user_agent == "Clicktrail admin test postback"
    assert data["record_url"] == f"/admin/tracking/conversion/{conversion.pk}/change/"
    assert data["log_url"] == f"/admin/tracking/postbacklog/{log.pk}/change/"


def test_firing_an_event_after_the_conversion_records_it(manager_admin):
    offer = OfferFactory()
    event = EventFactory(
        offer=offer,
        revenue_type="CPS",
        revenue_value=Decimal("10"),
        parameters={"amount": "{event_revenue}"},
    )
    conversion = ConversionFactory(click=ClickFactory(offer=offer, is_test=True))
    payload = {
        "target": str(event.pk),
        "transaction_id": conversion.click.transaction_id,
        "dry_run": False,
    }

    without_amount = post(manager_admin, send_url(offer), payload).json()
    with_amount = post(manager_admin, send_url(offer), {**payload, "amount": "19.99"}).json()

    assert without_amount["reason"] == "amount_required"
    assert (with_amount["reason"], with_amount["body"]["revenue"]) == ("accepted", "2.00")
    assert EventRecord.objects.get().event == event
    assert PostbackLog.objects.count() == 2


def test_firing_for_real_is_refused_on_a_real_click(manager_admin):
    offer = OfferFactory()
    click = ClickFactory(offer=offer, is_test=False)

    fired = post(
        manager_admin,
        send_url(offer),
        {"target": "conversion", "transaction_id": click.transaction_id, "dry_run": False},
    )
    dry = post(
        manager_admin,
        send_url(offer),
        {"target": "conversion", "transaction_id": click.transaction_id},
    )

    assert fired.status_code == 409
    assert "only for test clicks" in fired.json()["error"]
    assert dry.json()["reason"] == "accepted"
    assert not Conversion.objects.exists()
    assert not PostbackLog.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        [1, 2],
        {"target": "conversion"},
        {"target": "999999", "transaction_id": "x" * 20},
        {"target": "conversion", "transaction_id": {"a": 1}},
        {"target": "conversion", "transaction_id": "x" * 300},
        {"target": "conversion", "transaction_id": "x" * 20, "dry_run": "no"},
    ],
)
def test_bad_input_is_a_400_with_an_explanation(manager_admin, payload):
    offer = OfferFactory()
    body = payload if isinstance(payload, str) else json.dumps(payload)

    response = manager_admin.post(send_url(offer), body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]


def test_an_event_of_another_offer_cannot_be_tested_here(manager_admin):
    offer = OfferFactory()
    foreign = EventFactory()

    response = post(
        manager_admin, send_url(offer), {"target": str(foreign.pk), "transaction_id": "x" * 20}
    )

    assert response.status_code == 400


def test_an_unknown_offer_is_a_404(manager_admin):
    response = manager_admin.post(
        "/admin/tracking/test-postback/999999/click/", "{}", content_type="application/json"
    )

    assert response.status_code == 404


def test_analysts_cannot_make_test_clicks_or_fire(analyst_admin):
    offer = OfferFactory()
    click = ClickFactory(offer=offer, is_test=True)

    made = post(analyst_admin, click_url(offer), {})
    fired = post(
        analyst_admin,
        send_url(offer),
        {"target": "conversion", "transaction_id": click.transaction_id, "dry_run": False},
    )

    assert (made.status_code, fired.status_code) == (403, 403)
    assert Click.objects.count() == 1
    assert not Conversion.objects.exists()


def test_the_views_need_an_admin_login_and_a_post(client, manager_admin):
    offer = OfferFactory()

    anonymous = client.post(click_url(offer), "{}", content_type="application/json")
    get = manager_admin.get(send_url(offer))

    assert anonymous.status_code == 302
    assert get.status_code == 405
    assert not Click.objects.exists()
