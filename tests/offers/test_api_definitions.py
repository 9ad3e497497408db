from decimal import Decimal

import pytest

from offers.models import Advertiser, Event, Offer
from tests.factories import (
    AdvertiserFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PublisherFactory,
)

pytestmark = pytest.mark.django_db


def offer_payload(owner: Advertiser, **overrides: object) -> dict:
    return {
        "name": "Summer Sale",
        "advertiser": owner.pk,
        "destination_url": "https://shop.example.com/?t={transaction_id}",
        "revenue_type": "CPA",
        "revenue_value": "4.50",
        "payout_type": "CPS",
        "payout_value": "12.5",
        **overrides,
    }


def event_payload(**overrides: object) -> dict:
    return {
        "name": "purchase",
        "revenue_type": "CPS",
        "revenue_value": "10",
        "payout_type": "CPA",
        "payout_value": "1.00",
        **overrides,
    }


def test_api_needs_authentication(api_client):
    assert api_client.get("/api/v1/offers/").status_code == 401


def test_manager_creates_an_advertiser_with_a_generated_token(manager_client):
    response = manager_client.post("/api/v1/advertisers/", {"name": "Acme"}, format="json")

    assert response.status_code == 201, response.json()
    advertiser = Advertiser.objects.get(name="Acme")
    assert response.json()["postback_token"] == advertiser.postback_token
    assert len(advertiser.postback_token) >= 40
    assert response.json()["global_postback_url"].endswith(
        f"/postback?secure={advertiser.postback_token}&transaction_id=REPLACE"
    )


def test_the_token_cannot_be_set_through_the_api(manager_client):
    response = manager_client.post(
        "/api/v1/advertisers/", {"name": "Acme", "postback_token": "mine"}, format="json"
    )

    assert response.status_code == 201
    assert Advertiser.objects.get().postback_token != "mine"


def test_analysts_see_the_token_masked_and_cannot_write(analyst_client):
    advertiser = AdvertiserFactory()

    listing = analyst_client.get("/api/v1/advertisers/")
    created = analyst_client.post("/api/v1/advertisers/", {"name": "X"}, format="json")
    patched = analyst_client.patch(
        f"/api/v1/advertisers/{advertiser.pk}/", {"name": "Y"}, format="json"
    )

    assert listing.status_code == 200
    row = listing.json()["results"][0]
    assert advertiser.postback_token not in str(row)
    assert row["postback_token"].startswith(advertiser.postback_token[:4])
    assert (created.status_code, patched.status_code) == (403, 403)


def test_lists_are_paginated(manager_client):
    PublisherFactory.create_batch(3)

    body = manager_client.get("/api/v1/publishers/").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3


def test_manager_creates_and_patches_an_offer(manager_client):
    advertiser = AdvertiserFactory()

    created = manager_client.post("/api/v1/offers/", offer_payload(advertiser), format="json")
    offer_id = created.json()["id"]
    patched = manager_client.patch(
        f"/api/v1/offers/{offer_id}/", {"status": "paused", "currency": "eur"}, format="json"
    )

    assert created.status_code == 201, created.json()
    assert patched.status_code == 200, patched.json()
    offer = Offer.objects.get(pk=offer_id)
    assert (offer.status, offer.currency) == ("paused", "EUR")
    assert offer.payout_value == Decimal("12.50")
    body = patched.json()
    assert body["postback_url"].endswith(f"&transaction_id=REPLACE&offer_id={offer_id}")
    assert body["tracking_url"].endswith(f"/click?offer_id={offer_id}&aff_id=REPLACE")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"revenue_value": "-1"}, "revenue_value"),
        ({"revenue_type": "CPM"}, "revenue_type"),
        ({"payout_value": "150"}, "non_field_errors"),
        ({"currency": "US"}, "currency"),
        ({"currency": "U$D"}, "currency"),
        ({"status": "archived"}, "status"),
        ({"destination_url": "not a url"}, "destination_url"),
        ({"parameters": {"unknown": "x"}}, "parameters"),
        ({"parameters": {"amount": "has space"}}, "parameters"),
        ({"parameters": ["amount"]}, "parameters"),
        ({"advertiser": 999999}, "advertiser"),
    ],
)
def test_invalid_offers_are_refused_with_field_messages(manager_client, overrides, field):
    response = manager_client.post(
        "/api/v1/offers/", offer_payload(AdvertiserFactory(), **overrides), format="json"
    )

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Offer.objects.exists()


def test_offers_cannot_be_deleted_or_replaced(manager_client, superuser_client):
    offer = OfferFactory()

    # Account managers lack the permission; even a superuser finds no such method.
    assert manager_client.delete(f"/api/v1/offers/{offer.pk}/").status_code == 403
    assert superuser_client.delete(f"/api/v1/offers/{offer.pk}/").status_code == 405
    assert superuser_client.put(f"/api/v1/offers/{offer.pk}/", {}, format="json").status_code == 405
    assert Offer.objects.filter(pk=offer.pk).exists()


def test_manager_creates_lists_and_patches_events(manager_client):
    offer = OfferFactory()
    url = f"/api/v1/offers/{offer.pk}/events/"

    created = manager_client.post(
        url, event_payload(parameters={"amount": "{revenue}"}), format="json"
    )
    event_id = created.json()["id"]
    patched = manager_client.patch(f"{url}{event_id}/", {"allow_multiple": True}, format="json")
    listing = manager_client.get(url)

    assert created.status_code == 201, created.json()
    assert patched.status_code == 200, patched.json()
    assert Event.objects.get(pk=event_id).allow_multiple is True
    assert [row["id"] for row in listing.json()["results"]] == [event_id]
    assert created.json()["postback_url"].endswith(
        f"&offer_id={offer.pk}&event_id={event_id}&event_name=purchase&amount={{revenue}}"
    )


def test_duplicate_event_names_within_an_offer_are_refused(manager_client):
    event = EventFactory(name="purchase")
    other_offer = OfferFactory()

    same_offer = manager_client.post(
        f"/api/v1/offers/{event.offer_id}/events/", event_payload(), format="json"
    )
    other = manager_client.post(
        f"/api/v1/offers/{other_offer.pk}/events/", event_payload(), format="json"
    )
    other_case = manager_client.post(
        f"/api/v1/offers/{event.offer_id}/events/", event_payload(name="Purchase"), format="json"
    )
    renamed = manager_client.patch(
        f"/api/v1/offers/{event.offer_id}/events/{other_case.json()['id']}/",
        {"name": "purchase"},
        format="json",
    )

    assert same_offer.status_code == 400
    assert "already has an event" in str(same_offer.json())
    assert (other.status_code, other_case.status_code) == (201, 201)
    assert renamed.status_code == 400


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"revenue_type": "CPC"}, "revenue_type"),
        ({"payout_value": "-2"}, "payout_value"),
        ({"revenue_value": "101"}, "non_field_errors"),
        ({"parameters": {"secure": "x"}}, "parameters"),
    ],
)
def test_invalid_events_are_refused(manager_client, overrides, field):
    offer = OfferFactory()

    response = manager_client.post(
        f"/api/v1/offers/{offer.pk}/events/", event_payload(**overrides), format="json"
    )

    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_events_of_another_offer_are_not_found(manager_client):
    event = EventFactory()
    other = OfferFactory()

    assert manager_client.get(f"/api/v1/offers/{other.pk}/events/{event.pk}/").status_code == 404
    assert manager_client.get("/api/v1/offers/999999/events/").status_code == 404


def test_deleting_an_event_without_records_works(manager_client):
    event = EventFactory()

    response = manager_client.delete(f"/api/v1/offers/{event.offer_id}/events/{event.pk}/")

    assert response.status_code == 204
    assert not Event.objects.exists()


def test_deleting_an_event_with_records_is_refused_with_409(manager_client):
    record = EventRecordFactory()

    response = manager_client.delete(f"/api/v1/offers/{record.offer_id}/events/{record.event_id}/")

    assert response.status_code == 409
    assert "cannot be deleted" in response.json()["detail"]
    assert Event.objects.filter(pk=record.event_id).exists()


def test_analysts_cannot_create_or_delete_events(analyst_client):
    event = EventFactory()

    assert analyst_client.get(f"/api/v1/offers/{event.offer_id}/events/").status_code == 200
    assert (
        analyst_client.post(
            f"/api/v1/offers/{event.offer_id}/events/", event_payload(), format="json"
        ).status_code
        == 403
    )
    assert (
        analyst_client.delete(f"/api/v1/offers/{event.offer_id}/events/{event.pk}/").status_code
        == 403
    )


def test_session_authentication_works_for_the_api(client):
    from tests.factories import account_manager

    client.force_login(account_manager())

    assert client.get("/api/v1/offers/").status_code == 200
