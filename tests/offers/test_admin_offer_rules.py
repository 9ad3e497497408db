"""The admin's offer and advertiser rules: the allow-list on the advertiser page, caps with
their use and the conversion rules on the offer page, the Test postback tab's notice, and
the new reasons in the postback log's filter and the reports."""

from decimal import Decimal

import pytest

from offers.caps import cap_created, cap_usage
from offers.models import Advertiser, CapCounter, Offer, OfferCap
from tests.factories import AdvertiserFactory, ConversionFactory, OfferFactory, PostbackLogFactory
from tests.offers.test_admin_offer import change_url, offer_form

pytestmark = pytest.mark.django_db


def test_the_advertiser_page_edits_the_allow_list_one_entry_per_line(manager_admin):
    advertiser = AdvertiserFactory()
    url = f"/admin/offers/advertiser/{advertiser.pk}/change/"

    page = manager_admin.get(url)
    response = manager_admin.post(
        url, {"name": advertiser.name, "allowed_ips": "203.0.113.7\n2001:DB8::/32\n\n"}
    )

    assert "Allowed IPs" in page.content.decode()
    assert response.status_code == 302
    assert Advertiser.objects.get(pk=advertiser.pk).allowed_ips == [
        "203.0.113.7/32",
        "2001:db8::/32",
    ]


def test_an_allow_list_entry_that_is_no_address_is_shown_as_an_error(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.post(
        f"/admin/offers/advertiser/{advertiser.pk}/change/",
        {"name": advertiser.name, "allowed_ips": "203.0.113.7\nnot-an-ip"},
    )

    assert response.status_code == 200
    assert "Not an IP address or CIDR range: not-an-ip" in response.content.decode()
    assert Advertiser.objects.get(pk=advertiser.pk).allowed_ips == []


def inline(prefix: str = "caps", **rows: dict) -> dict[str, str]:  # noqa: ANN003
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows.values()):
        data |= {f"{prefix}-{n}-{name}": value for name, value in row.items()}
    return data


def test_caps_are_added_on_the_offer_page_and_start_from_the_periods_records(manager_admin):
    offer = OfferFactory()
    ConversionFactory.create_batch(2, click__offer=offer)
    form = offer_form(offer.advertiser, name=offer.name, min_conversion_seconds="5")
    form |= {"conversion_window_days": "30", "fallback_url": "https://fb.example/"}
    form |= inline(daily={"metric": "conversions", "period": "day", "limit": "10", "mode": "hard"})

    response = manager_admin.post(change_url(offer), form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    cap = OfferCap.objects.get(offer=offer)
    assert (cap.metric, cap.limit, cap.mode) == ("conversions", Decimal(10), "hard")
    assert cap_usage([cap])[cap.pk] == 2
    saved = Offer.objects.get(pk=offer.pk)
    assert (saved.conversion_window_days, saved.min_conversion_seconds) == (30, 5)
    assert saved.fallback_url == "https://fb.example/"
    page = manager_admin.get(change_url(offer)).content.decode()
    assert "Caps &amp; rules" in page
    assert "2.00 of 10.00" in page  # the inline's use column
    assert "data-caps-table" in page


def test_the_test_postback_tab_says_the_allow_list_is_skipped(manager_admin):
    offer = OfferFactory(advertiser=AdvertiserFactory(allowed_ips=["203.0.113.0/24"]))
    plain = OfferFactory()

    with_list = manager_admin.get(change_url(offer)).content.decode()
    without = manager_admin.get(change_url(plain)).content.decode()

    assert "data-test-allow-list" in with_list and "Tests made here skip it" in with_list
    assert "data-test-allow-list" not in without


def test_the_postback_log_filters_by_the_new_reasons(manager_admin):
    PostbackLogFactory(reason="ip_not_allowed", status_code=403)
    PostbackLogFactory(reason="click_expired", status_code=422)

    page = manager_admin.get("/admin/tracking/postbacklog/").content.decode()
    filtered = manager_admin.get("/admin/tracking/postbacklog/?reason__exact=ip_not_allowed")

    assert "reason__exact=ip_not_allowed" in page and "reason__exact=click_expired" in page
    assert filtered.status_code == 200
    assert len(filtered.context["cl"].result_list) == 1


def test_the_reports_outcomes_count_the_new_reasons(manager_admin):
    PostbackLogFactory(reason="ip_not_allowed", status_code=403)

    page = manager_admin.get("/admin/tracking/eventrecord/reports/")

    assert page.status_code == 200
    assert "ip_not_allowed" in page.content.decode()


def test_a_cap_removed_on_the_offer_page_goes_with_its_counters(manager_admin):
    offer = OfferFactory()
    cap = OfferCap.objects.create(offer=offer, metric="conversions", period="day", limit=10)
    cap_created(cap)
    assert CapCounter.objects.filter(cap=cap).exists()
    form = offer_form(offer.advertiser, name=offer.name)
    form |= inline(daily={"id": str(cap.pk), "metric": "conversions", "period": "day"})
    form |= {"caps-INITIAL_FORMS": "1", "caps-0-limit": "10", "caps-0-mode": "hard"}
    form |= {"caps-0-offer": str(offer.pk), "caps-0-DELETE": "on"}

    response = manager_admin.post(change_url(offer), form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not OfferCap.objects.filter(pk=cap.pk).exists()
    assert not CapCounter.objects.filter(cap_id=cap.pk).exists()
