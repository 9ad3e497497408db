"""The hit endpoints are never cached: the same headers Django's ``never_cache`` writes."""

from email.utils import parsedate_to_datetime

import pytest
from django.http import HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from tests.factories import ClickFactory, OfferFactory

pytestmark = pytest.mark.django_db


def django_never_cache() -> HttpResponse:
    response = HttpResponse()
    add_never_cache_headers(response)
    return response


@pytest.mark.parametrize(
    "request_for",
    [
        lambda click: ("/postback", {"secure": "x", "transaction_id": click.transaction_id}),
        lambda click: (
            "/postback",
            {
                "secure": click.offer.advertiser.postback_token,
                "transaction_id": click.transaction_id,
            },
        ),
        lambda click: ("/click", {"offer_id": click.offer_id, "aff_id": click.publisher_id}),
        lambda click: ("/click", {"offer_id": 999999, "aff_id": 1}),
        lambda click: ("/healthz", {}),
        lambda click: ("/", {"transaction_id": click.transaction_id}),
    ],
    ids=["rejected postback", "accepted postback", "click", "refused click", "healthz", "root"],
)
def test_every_hit_answer_says_never_cache_like_django(client, request_for):
    path, params = request_for(ClickFactory(offer=OfferFactory()))

    response = client.get(path, params)

    expected = django_never_cache()
    assert response["Cache-Control"] == expected["Cache-Control"]
    expires = parsedate_to_datetime(response["Expires"])
    assert abs((expires - timezone.now()).total_seconds()) < 5
