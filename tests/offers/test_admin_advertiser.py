"""The advertiser page: created through the service, token masked/revealed/rotated, roles."""

import html

import pytest

from offers.models import Advertiser
from offers.postback_urls import global_postback_url
from offers.tokens import token_digest
from tests.factories import AdvertiserFactory, ClickFactory, OfferFactory

pytestmark = pytest.mark.django_db


def change_url(advertiser: Advertiser) -> str:
    return f"/admin/offers/advertiser/{advertiser.pk}/change/"


def test_advertiser_changelist_shows_masked_tokens_only(manager_admin):
    advertiser = AdvertiserFactory(name="Northwind Games")

    response = manager_admin.get("/admin/offers/advertiser/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Northwind Games" in page
    assert advertiser.masked_token in page
    assert advertiser.postback_token not in page


def test_advertiser_search_finds_by_name(manager_admin):
    wanted = AdvertiserFactory(name="Northwind Games")
    AdvertiserFactory(name="Globex")

    response = manager_admin.get("/admin/offers/advertiser/", {"q": "northwind"})

    assert list(response.context["cl"].result_list) == [wanted]


def test_adding_an_advertiser_asks_only_the_name_and_generates_the_token(manager_admin):
    page = manager_admin.get("/admin/offers/advertiser/add/")

    response = manager_admin.post("/admin/offers/advertiser/add/", {"name": "Acme"})

    assert list(page.context["adminform"].form.fields) == ["name"]
    assert response.status_code == 302
    advertiser = Advertiser.objects.get(name="Acme")
    assert len(advertiser.postback_token) >= 40
    assert advertiser.postback_token_digest == token_digest(advertiser.postback_token)


def test_a_duplicate_advertiser_name_is_a_form_error(manager_admin):
    AdvertiserFactory(name="Acme")

    response = manager_admin.post("/admin/offers/advertiser/add/", {"name": "Acme"})

    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_manager_sees_the_masked_token_with_reveal_copy_and_rotate(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.get(change_url(advertiser))

    assert response.status_code == 200
    page = response.content.decode()
    shown = page.split("data-token-value>")[1].split("<")[0]
    assert shown == advertiser.masked_token
    assert f'data-token="{advertiser.postback_token}"' in page
    assert "data-reveal" in page
    assert f'data-copy="{html.escape(global_postback_url(advertiser))}"' in page
    assert f"/admin/offers/advertiser/{advertiser.pk}/rotate-token/" in page


def test_renaming_an_advertiser_keeps_its_token(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.post(change_url(advertiser), {"name": "Renamed"})

    assert response.status_code == 302
    renamed = Advertiser.objects.get(pk=advertiser.pk)
    assert (renamed.name, renamed.postback_token) == ("Renamed", advertiser.postback_token)


def test_rotating_asks_first_and_says_the_old_token_stops_working(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.get(f"/admin/offers/advertiser/{advertiser.pk}/rotate-token/")

    assert response.status_code == 200
    assert "stops working <strong>at once</strong>" in response.content.decode()
    assert Advertiser.objects.get(pk=advertiser.pk).postback_token == advertiser.postback_token


def test_after_rotating_the_old_token_is_refused_and_the_new_one_accepted(manager_admin, client):
    advertiser = AdvertiserFactory()
    old_token = advertiser.postback_token
    click = ClickFactory(offer=OfferFactory(advertiser=advertiser))

    response = manager_admin.post(
        f"/admin/offers/advertiser/{advertiser.pk}/rotate-token/", follow=True
    )

    advertiser.refresh_from_db()
    assert advertiser.postback_token != old_token
    assert "The old token no longer works" in response.content.decode()
    old = client.get("/postback", {"secure": old_token, "transaction_id": click.transaction_id})
    new = client.get(
        "/postback", {"secure": advertiser.postback_token, "transaction_id": click.transaction_id}
    )
    assert (old.status_code, old.json()["reason"]) == (403, "invalid_secure")
    assert (new.status_code, new.json()["reason"]) == (200, "accepted")


def test_analyst_sees_the_advertiser_without_the_token_and_cannot_rotate(analyst_admin):
    advertiser = AdvertiserFactory()

    page = analyst_admin.get(change_url(advertiser))
    rotate = analyst_admin.post(f"/admin/offers/advertiser/{advertiser.pk}/rotate-token/")

    assert page.status_code == 200
    assert advertiser.postback_token not in page.content.decode()
    assert advertiser.masked_token in page.content.decode()
    assert "Rotate token" not in page.content.decode()
    assert rotate.status_code == 403
    assert Advertiser.objects.get(pk=advertiser.pk).postback_token == advertiser.postback_token
    assert analyst_admin.get("/admin/offers/advertiser/add/").status_code == 403


def test_rotating_an_unknown_advertiser_is_a_404(manager_admin):
    assert manager_admin.get("/admin/offers/advertiser/999999/rotate-token/").status_code == 404
