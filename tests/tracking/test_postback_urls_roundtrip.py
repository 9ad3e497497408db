"""The postback URLs the API hands out work: placeholders replaced, the endpoint accepts them.

An account manager copies a URL from the API (advertiser global, offer, event), the
advertiser's platform substitutes its macros as text, and fires it. These tests do exactly
that against the real endpoint.
"""

from decimal import Decimal
from urllib.parse import quote, urlsplit

import pytest

from tests.factories import ClickFactory, PublisherFactory
from tracking.models import Conversion, EventRecord

pytestmark = pytest.mark.django_db

BASE = "https://track.example.com"


@pytest.fixture(autouse=True)
def tracking_base_url(settings):
    settings.TRACKING_BASE_URL = BASE


def fire(client, url: str, substitutions: dict[str, str]):
    """Substitute the macros as a partner's system does (text), then request the URL."""
    for placeholder, value in substitutions.items():
        url = url.replace(placeholder, quote(value, safe=""))
    assert url.startswith(f"{BASE}/postback?")
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def create_offer(manager_client, **fields: object) -> dict:
    advertiser = manager_client.post("/api/v1/advertisers/", {"name": "Acme"}, format="json")
    payload = {
        "name": "Summer Sale",
        "advertiser": advertiser.json()["id"],
        "destination_url": "https://shop.example.com/?t={transaction_id}",
        "revenue_type": "CPA",
        "revenue_value": "4.00",
        "payout_type": "CPA",
        "payout_value": "1.50",
        **fields,
    }
    response = manager_client.post("/api/v1/offers/", payload, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def click_on(offer: dict):
    return ClickFactory(offer_id=offer["id"], publisher=PublisherFactory())


def test_the_advertisers_global_url_records_a_conversion(client, manager_client):
    offer = create_offer(manager_client)
    click = click_on(offer)
    advertiser = manager_client.get(f"/api/v1/advertisers/{offer['advertiser']}/").json()

    response = fire(client, advertiser["global_postback_url"], {"REPLACE": click.transaction_id})

    assert response.status_code == 200, response.json()
    assert response.json()["type"] == "conversion"
    assert Conversion.objects.get().click == click


def test_the_offer_url_with_an_appsflyer_mapping_records_a_cps_conversion(client, manager_client):
    offer = create_offer(
        manager_client,
        revenue_type="CPS",
        revenue_value="10",
        parameters={
            "transaction_id": "{clickid}",
            "amount": "{event_revenue}",
            "currency": "{event_revenue_currency}",
            "adv_sub": "{order_id}",
        },
    )
    click = click_on(offer)

    response = fire(
        client,
        offer["postback_url"],
        {
            "{clickid}": click.transaction_id,
            "{event_revenue}": "19.99",
            "{event_revenue_currency}": "eur",
            "{order_id}": "A-1001",
        },
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["revenue"], response.json()["currency"]) == ("2.00", "EUR")
    conversion = Conversion.objects.get()
    assert (conversion.amount, conversion.adv_sub) == (Decimal("19.99"), "A-1001")


def test_the_event_url_with_an_encoded_name_and_adjust_mapping_records_the_event(
    client, manager_client
):
    offer = create_offer(manager_client, parameters={"adv_sub": "{order_id}"})
    created = manager_client.post(
        f"/api/v1/offers/{offer['id']}/events/",
        {
            "name": "Achat réussi & payé",
            "revenue_type": "CPS",
            "revenue_value": "5",
            "payout_type": "FIXED",
            "payout_value": "0.40",
            "allow_multiple": True,
            "parameters": {
                "transaction_id": "{click_id}",
                "amount": "{revenue_float}",
                "currency": "{currency}",
            },
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    event = manager_client.get(
        f"/api/v1/offers/{offer['id']}/events/{created.json()['id']}/"
    ).json()
    click = click_on(offer)
    conversion_url = manager_client.get(f"/api/v1/offers/{offer['id']}/").json()["postback_url"]
    fire(client, conversion_url, {"REPLACE": click.transaction_id, "{order_id}": "c-1"})
    macros = {
        "{click_id}": click.transaction_id,
        "{revenue_float}": "80",
        "{currency}": "usd",
    }

    first = fire(client, event["postback_url"], {**macros, "{order_id}": "order-1"})
    again = fire(client, event["postback_url"], {**macros, "{order_id}": "order-1"})
    second = fire(client, event["postback_url"], {**macros, "{order_id}": "order-2"})

    assert first.status_code == 200, first.json()
    assert first.json()["event_name"] == "Achat réussi & payé"
    assert (first.json()["revenue"], first.json()["payout"]) == ("4.00", "0.40")
    assert (again.status_code, again.json()["reason"]) == (409, "duplicate_event")
    assert second.status_code == 200
    assert EventRecord.objects.count() == 2


def test_the_masked_url_an_analyst_sees_does_not_work(client, manager_client, analyst_client):
    offer = create_offer(manager_client)
    click = click_on(offer)
    masked = analyst_client.get(f"/api/v1/advertisers/{offer['advertiser']}/").json()

    response = fire(client, masked["global_postback_url"], {"REPLACE": click.transaction_id})

    assert response.status_code == 403
    assert not Conversion.objects.exists()
