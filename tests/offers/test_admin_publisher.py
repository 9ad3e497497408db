"""Publisher admin smoke tests and roles."""

import pytest

from offers.models import Publisher
from offers.postback_urls import tracking_url
from tests.factories import OfferFactory, PublisherFactory

pytestmark = pytest.mark.django_db

#: The publisher page's postbacks inline, empty (offers/admin_postbacks.py).
NO_POSTBACKS = {"postbacks-TOTAL_FORMS": "0", "postbacks-INITIAL_FORMS": "0"}


def test_publisher_changelist_and_search_work(manager_admin):
    wanted = PublisherFactory(name="MediaHub")
    PublisherFactory(name="SearchNest")

    listed = manager_admin.get("/admin/offers/publisher/")
    found = manager_admin.get("/admin/offers/publisher/", {"q": "media"})

    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 2
    assert list(found.context["cl"].result_list) == [wanted]


def test_manager_adds_and_renames_a_publisher(manager_admin):
    added = manager_admin.post("/admin/offers/publisher/add/", {"name": "AppPromo", **NO_POSTBACKS})
    publisher = Publisher.objects.get(name="AppPromo")
    page = manager_admin.get(f"/admin/offers/publisher/{publisher.pk}/change/")
    renamed = manager_admin.post(
        f"/admin/offers/publisher/{publisher.pk}/change/",
        {"name": "AppPromo Ltd", **NO_POSTBACKS},
    )

    assert added.status_code == 302
    assert page.status_code == 200
    assert renamed.status_code == 302
    assert Publisher.objects.get(pk=publisher.pk).name == "AppPromo Ltd"


def test_analyst_views_publishers_but_cannot_change_them(analyst_admin):
    publisher = PublisherFactory(name="MediaHub")

    page = analyst_admin.get(f"/admin/offers/publisher/{publisher.pk}/change/")
    change = analyst_admin.post(
        f"/admin/offers/publisher/{publisher.pk}/change/", {"name": "Hijacked"}
    )

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert change.status_code == 403
    assert analyst_admin.get("/admin/offers/publisher/add/").status_code == 403
    assert Publisher.objects.get(pk=publisher.pk).name == "MediaHub"


def test_the_publisher_page_shows_its_id_and_a_tracking_link_per_active_offer(manager_admin):
    publisher = PublisherFactory(name="MediaHub")
    active = OfferFactory(name="Dragon Quest")
    OfferFactory(name="Paused one", status="paused")

    page = manager_admin.get(f"/admin/offers/publisher/{publisher.pk}/change/").content.decode()

    assert "Publisher ID" in page and f"<code>{publisher.pk}</code>" in page
    link = tracking_url(active, publisher_id=publisher.pk)
    assert f'data-copy="{link.replace("&", "&amp;")}"' in page
    assert "Paused one" not in page
