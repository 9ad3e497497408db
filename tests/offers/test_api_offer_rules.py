"""The API's offer and advertiser rules (docs/postbacks.md "Caps, windows"): caps replaced
whole and read back with their use, windows, IP allow-lists."""

from decimal import Decimal

import pytest

from offers.models import Advertiser, Offer, OfferCap
from tests.factories import (
    AdvertiserFactory,
    ConversionFactory,
    OfferFactory,
    PublisherFactory,
)

pytestmark = pytest.mark.django_db


def test_an_advertisers_allow_list_is_stored_canonically(manager_client):
    advertiser = AdvertiserFactory()

    response = manager_client.patch(
        f"/api/v1/advertisers/{advertiser.pk}/",
        {"allowed_ips": ["203.0.113.7", "2001:DB8::/32", " "]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["allowed_ips"] == ["203.0.113.7/32", "2001:db8::/32"]
    assert Advertiser.objects.get(pk=advertiser.pk).allowed_ips == [
        "203.0.113.7/32",
        "2001:db8::/32",
    ]


def test_an_allow_list_entry_that_is_no_address_is_refused(manager_client):
    response = manager_client.post(
        "/api/v1/advertisers/", {"name": "Acme", "allowed_ips": ["example.com"]}, format="json"
    )

    assert response.status_code == 400
    assert "allowed_ips" in response.json()


def test_a_new_advertiser_may_come_with_an_allow_list(manager_client):
    response = manager_client.post(
        "/api/v1/advertisers/", {"name": "Acme", "allowed_ips": ["10.0.0.0/8"]}, format="json"
    )

    assert response.status_code == 201
    assert Advertiser.objects.get(name="Acme").allowed_ips == ["10.0.0.0/8"]


def test_caps_are_replaced_whole_and_read_back_with_their_use(manager_client):
    offer = OfferFactory()
    publisher = PublisherFactory()
    ConversionFactory.create_batch(2, click__offer=offer)
    caps = [
        {"metric": "conversions", "period": "day", "limit": "10", "mode": "hard"},
        {
            "metric": "payout",
            "period": "week",
            "limit": "500",
            "publisher": publisher.pk,
            "mode": "soft",
        },
    ]

    response = manager_client.patch(f"/api/v1/offers/{offer.pk}/", {"caps": caps}, format="json")

    assert response.status_code == 200, response.json()
    read = [
        {k: c[k] for k in ("metric", "period", "limit", "publisher", "mode", "used")}
        for c in response.json()["caps"]
    ]
    assert read == [
        {
            "metric": "conversions",
            "period": "day",
            "limit": "10.00",
            "publisher": None,
            "mode": "hard",
            "used": "2.00",
        },
        {
            "metric": "payout",
            "period": "week",
            "limit": "500.00",
            "publisher": publisher.pk,
            "mode": "soft",
            "used": "0.00",
        },
    ]

    again = manager_client.patch(f"/api/v1/offers/{offer.pk}/", {"caps": caps[:1]}, format="json")

    assert [c["metric"] for c in again.json()["caps"]] == ["conversions"]
    assert OfferCap.objects.filter(offer=offer).count() == 1


def test_a_cap_with_a_bad_value_is_refused(manager_client):
    offer = OfferFactory()

    response = manager_client.patch(
        f"/api/v1/offers/{offer.pk}/",
        {"caps": [{"metric": "clicks", "period": "day", "limit": "0", "mode": "hard"}]},
        format="json",
    )

    assert response.status_code == 400
    assert not OfferCap.objects.exists()


def test_offer_windows_and_fallback_are_api_fields(manager_client):
    owner = AdvertiserFactory()
    payload = {
        "name": "Windowed",
        "advertiser": owner.pk,
        "destination_url": "https://shop.example.com/",
        "revenue_type": "CPA",
        "revenue_value": "4.50",
        "payout_type": "CPA",
        "payout_value": "1",
        "fallback_url": "https://fallback.example/?t={transaction_id}",
        "min_conversion_seconds": 30,
    }

    created = manager_client.post("/api/v1/offers/", payload, format="json")

    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["conversion_window_days"], body["min_conversion_seconds"]) == (90, 30)
    offer_id = body["id"]
    assert (
        manager_client.patch(
            f"/api/v1/offers/{offer_id}/", {"conversion_window_days": None}, format="json"
        ).json()["conversion_window_days"]
        is None
    )
    zero = manager_client.patch(
        f"/api/v1/offers/{offer_id}/", {"conversion_window_days": 0}, format="json"
    )
    assert zero.status_code == 400
    assert Offer.objects.get(pk=offer_id).fallback_url.startswith("https://fallback.example/")


def test_analysts_read_caps_but_cannot_change_them(analyst_client):
    offer = OfferFactory()
    OfferCap.objects.create(
        offer=offer, metric="revenue", period="month", limit=Decimal(9), mode="soft"
    )

    read = analyst_client.get(f"/api/v1/offers/{offer.pk}/")
    write = analyst_client.patch(f"/api/v1/offers/{offer.pk}/", {"caps": []}, format="json")

    assert read.json()["caps"][0]["used"] == "0.00"
    assert write.status_code == 403
