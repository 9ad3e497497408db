"""Capped clicks (docs/postbacks.md): while a hard cap of the offer, or of the click's
publisher, is full for the current period, clicks are recorded, flagged and sent to the
offer's fallback URL."""

import pytest

from offers.models import CapCounter, OfferCap
from tests.factories import OfferFactory, PublisherFactory
from tracking import caps
from tracking.models import Click

pytestmark = pytest.mark.django_db

FALLBACK = "https://fallback.example/?c={transaction_id}&pub={aff_id}"


def full_cap(offer, **given) -> OfferCap:  # noqa: ANN001
    cap = OfferCap.objects.create(
        offer=offer,
        **({"metric": "conversions", "period": "day", "limit": 1, "mode": "hard"} | given),
    )
    caps.counter_start(cap)
    CapCounter.objects.filter(cap=cap, shard=0).update(used=1)
    return cap


def click(client, offer, publisher):  # noqa: ANN001, ANN201
    return client.get("/click", {"offer_id": offer.pk, "aff_id": publisher.pk})


def test_a_click_while_a_hard_cap_is_full_goes_to_the_fallback_url_and_is_flagged(client):
    offer, publisher = OfferFactory(fallback_url=FALLBACK), PublisherFactory()
    full_cap(offer)

    response = click(client, offer, publisher)

    recorded = Click.objects.get()
    assert response.status_code == 302
    assert response["Location"] == (
        f"https://fallback.example/?c={recorded.transaction_id}&pub={publisher.pk}"
    )
    assert recorded.capped


def test_a_cap_with_room_or_a_soft_cap_sends_clicks_to_the_destination(client):
    offer, publisher = OfferFactory(fallback_url=FALLBACK), PublisherFactory()
    full_cap(offer, mode="soft")
    roomy = full_cap(offer)
    CapCounter.objects.filter(cap=roomy).update(used=0)

    response = click(client, offer, publisher)

    assert response["Location"].startswith("https://shop.example.com/landing")
    assert not Click.objects.get().capped


def test_a_publishers_full_cap_sends_only_that_publishers_clicks_to_the_fallback(client):
    offer = OfferFactory(fallback_url=FALLBACK)
    capped, other = PublisherFactory(), PublisherFactory()
    full_cap(offer, publisher=capped)

    first = click(client, offer, capped)
    second = click(client, offer, other)

    assert first["Location"].startswith("https://fallback.example/")
    assert second["Location"].startswith("https://shop.example.com/")


def test_without_a_fallback_url_a_capped_click_goes_to_the_destination_flagged(client):
    offer, publisher = OfferFactory(), PublisherFactory()
    full_cap(offer)

    response = click(client, offer, publisher)

    assert response["Location"].startswith("https://shop.example.com/")
    assert Click.objects.get().capped
