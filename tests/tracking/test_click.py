import re
from urllib.parse import parse_qs, urlsplit

import pytest

from offers.models import Offer
from tests.factories import ClickFactory, OfferFactory, PublisherFactory
from tracking.models import Click

pytestmark = pytest.mark.django_db


def test_click_is_recorded_and_redirected_with_macros_replaced(client):
    offer = OfferFactory(
        destination_url=(
            "https://shop.example.com/go?tid={transaction_id}&o={offer_id}&p={aff_id}"
            "&s={aff_sub}&s2={aff_sub2}&s5={aff_sub5}&src={source}"
        )
    )
    publisher = PublisherFactory()

    response = client.get(
        "/click",
        {
            "offer_id": offer.pk,
            "aff_id": publisher.pk,
            "aff_sub": "a b&c=d",
            "aff_sub2": "ünï",
            "source": "push",
        },
        HTTP_USER_AGENT="Mozilla/5.0 (X11)",
        HTTP_REFERER="https://publisher.example.net/page",
        REMOTE_ADDR="203.0.113.9",
    )

    assert response.status_code == 302
    click = Click.objects.get()
    assert (click.offer, click.publisher) == (offer, publisher)
    assert (click.aff_sub, click.aff_sub2, click.source) == ("a b&c=d", "ünï", "push")
    assert click.ip == "203.0.113.9"
    assert click.user_agent == "Mozilla/5.0 (X11)"
    assert click.referrer == "https://publisher.example.net/page"
    location = response["Location"]
    assert "a%20b%26c%3Dd" in location  # URL-encoded, so it cannot break the query
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert query == {
        "tid": [click.transaction_id],
        "o": [str(offer.pk)],
        "p": [str(publisher.pk)],
        "s": ["a b&c=d"],
        "s2": ["ünï"],
        "s5": [""],
        "src": ["push"],
    }


def test_transaction_ids_are_unguessable_and_well_formed(client):
    offer, publisher = OfferFactory(), PublisherFactory()

    for _ in range(20):
        client.get("/click", {"offer_id": offer.pk, "aff_id": publisher.pk})

    ids = list(Click.objects.values_list("transaction_id", flat=True))
    assert len(set(ids)) == 20
    for transaction_id in ids:
        # token_urlsafe(24): 24 random bytes = 192 bits, 32 characters.
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", transaction_id)


def test_destination_without_macros_is_used_as_is(client):
    offer = OfferFactory(destination_url="https://shop.example.com/")
    response = client.get("/click", {"offer_id": offer.pk, "aff_id": PublisherFactory().pk})

    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/"


@pytest.mark.parametrize(
    ("make_params", "message"),
    [
        (lambda o, p: {"offer_id": 999999, "aff_id": p.pk}, "No offer has ID 999999"),
        (lambda o, p: {"offer_id": o.pk, "aff_id": 999999}, "No publisher has ID 999999"),
        (lambda o, p: {"aff_id": p.pk}, "Unknown offer"),
        (lambda o, p: {"offer_id": o.pk}, "Unknown publisher"),
        (lambda o, p: {"offer_id": "abc", "aff_id": p.pk}, "Unknown offer"),
        (lambda o, p: {"offer_id": "-1", "aff_id": p.pk}, "Unknown offer"),
        (lambda o, p: {"offer_id": "1" * 40, "aff_id": p.pk}, "Unknown offer"),
        (lambda o, p: {"offer_id": 2**31, "aff_id": p.pk}, f"No offer has ID {2**31}"),
        (lambda o, p: {"offer_id": o.pk, "aff_id": 10**17}, f"No publisher has ID {10**17}"),
        (lambda o, p: {"offer_id": o.pk, "aff_id": "١٢"}, "Unknown publisher"),
    ],
)
def test_unknown_offer_or_publisher_is_404_and_stores_nothing(client, make_params, message):
    offer, publisher = OfferFactory(), PublisherFactory()

    response = client.get("/click", make_params(offer, publisher))

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()
    assert not Click.objects.exists()


def test_paused_offer_is_404_and_stores_nothing(client):
    offer = OfferFactory(status=Offer.Status.PAUSED)

    response = client.get("/click", {"offer_id": offer.pk, "aff_id": PublisherFactory().pk})

    assert response.status_code == 404
    assert "paused" in response.content.decode()
    assert not Click.objects.exists()


def test_click_only_answers_get(client):
    offer, publisher = OfferFactory(), PublisherFactory()

    response = client.post(f"/click?offer_id={offer.pk}&aff_id={publisher.pk}")

    assert response.status_code == 405
    assert not Click.objects.exists()


def test_overlong_and_control_characters_in_sub_ids_are_trimmed(client):
    offer, publisher = OfferFactory(), PublisherFactory()

    response = client.get(
        "/click", {"offer_id": offer.pk, "aff_id": publisher.pk, "aff_sub": "x\x00y" + "z" * 400}
    )

    assert response.status_code == 302
    click = Click.objects.get()
    assert click.aff_sub.startswith("xyz")
    assert len(click.aff_sub) == 255


def test_forwarded_for_is_ignored_unless_configured(client, settings):
    offer, publisher = OfferFactory(), PublisherFactory()
    params = {"offer_id": offer.pk, "aff_id": publisher.pk}
    headers = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.50, 10.0.0.1"}

    client.get("/click", params, **headers)
    settings.USE_X_FORWARDED_FOR = True
    client.get("/click", params, **headers)

    # Trusted, the right-most entry: the one the proxy wrote (SPEC "IP allow-list").
    assert list(Click.objects.order_by("id").values_list("ip", flat=True)) == [
        "10.0.0.2",
        "10.0.0.1",
    ]


def test_existing_clicks_are_untouched_by_new_ones(client):
    existing = ClickFactory()

    client.get("/click", {"offer_id": existing.offer_id, "aff_id": existing.publisher_id})

    assert Click.objects.count() == 2
