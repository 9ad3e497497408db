"""Analysts never get a whole postback token from the API or the admin (issue #19, 1).

With a token anyone can forge conversions, so only account managers see it whole: every
generated URL shown to an analyst carries it masked.
"""

import pytest

from offers.tokens import mask_token
from tests.conftest import admin_client_for, token_client
from tests.factories import EventFactory, OfferFactory, account_manager, analyst

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():  # noqa: ANN201
    return EventFactory(offer=OfferFactory())


def api_texts(client, event) -> list[str]:  # noqa: ANN001
    offer = event.offer
    paths = [
        "/api/v1/offers/",
        f"/api/v1/offers/{offer.pk}/",
        f"/api/v1/offers/{offer.pk}/events/",
        f"/api/v1/offers/{offer.pk}/events/{event.pk}/",
        "/api/v1/advertisers/",
        f"/api/v1/advertisers/{offer.advertiser_id}/",
    ]
    responses = [client.get(path) for path in paths]
    assert [r.status_code for r in responses] == [200] * len(paths)
    return [r.content.decode() for r in responses]


def test_analysts_get_offer_and_event_postback_urls_with_the_token_masked(event):
    token = event.offer.advertiser.postback_token

    texts = api_texts(token_client(analyst()), event)

    for text in texts:
        assert token not in text
    assert all(mask_token(token) in text for text in texts)


def test_account_managers_get_the_whole_token_to_hand_to_the_advertiser(event):
    token = event.offer.advertiser.postback_token

    texts = api_texts(token_client(account_manager()), event)

    assert all(f"secure={token}" in text or token in text for text in texts)
    offer = token_client(account_manager()).get(f"/api/v1/offers/{event.offer.pk}/").json()
    assert f"secure={token}&" in offer["postback_url"]


def test_analysts_see_generated_urls_masked_in_the_admin(event):
    token = event.offer.advertiser.postback_token
    browser = admin_client_for(analyst())

    pages = [
        browser.get(f"/admin/offers/offer/{event.offer.pk}/change/"),
        browser.get(f"/admin/offers/advertiser/{event.offer.advertiser_id}/change/"),
        browser.get("/admin/offers/advertiser/"),
    ]

    assert [page.status_code for page in pages] == [200, 200, 200]
    for page in pages:
        assert token not in page.content.decode()
    assert mask_token(token) in pages[0].content.decode()
