"""The offer page: smoke tests, its tabs, generated URLs that the endpoint accepts, roles."""

import html
import re
from decimal import Decimal

import pytest

from offers.models import Offer
from offers.postback_urls import event_postback_url, offer_postback_url, tracking_url
from tests.factories import (
    AdvertiserFactory,
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
    PublisherFactory,
)
from tracking.models import Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def change_url(offer: Offer) -> str:
    return f"/admin/offers/offer/{offer.pk}/change/"


def offer_form(advertiser, **overrides: str) -> dict[str, str]:  # noqa: ANN001
    data = {
        "name": "Summer Sale",
        "advertiser": str(advertiser.pk),
        "status": "active",
        "destination_url": "https://shop.example.com/?t={transaction_id}",
        "currency": "usd",
        "revenue_type": "CPA",
        "revenue_value": "4.50",
        "payout_type": "CPA",
        "payout_value": "3.00",
        "parameters__transaction_id": "",
        "parameters__amount": "",
        # The caps inline's management form (none added), as a browser sends it.
        "caps-TOTAL_FORMS": "0",
        "caps-INITIAL_FORMS": "0",
        "caps-MIN_NUM_FORMS": "0",
        "caps-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def copy_values(page: str) -> list[str]:
    """What the copy buttons of a page copy, as the browser would read the attribute."""
    return [html.unescape(value) for value in re.findall(r'data-copy="([^"]*)"', page)]


def test_offer_changelist_lists_offers_with_revenue_payout_and_event_count(manager_admin):
    offer = OfferFactory(name="Dragon Install")
    EventFactory.create_batch(2, offer=offer)

    response = manager_admin.get("/admin/offers/offer/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Dragon Install" in page
    assert "5.00 USD (CPA)" in page
    assert response.context["cl"].result_list[0].event_count == 2


def test_offer_search_finds_by_name_id_and_advertiser(manager_admin):
    wanted = OfferFactory(name="Dragon Install", advertiser=AdvertiserFactory(name="Northwind"))
    other = OfferFactory(name="Space Tycoon", advertiser=AdvertiserFactory(name="Globex"))

    for term in ["dragon", str(wanted.pk), "northwind"]:
        response = manager_admin.get("/admin/offers/offer/", {"q": term})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [wanted], term
    assert other not in response.context["cl"].result_list


def test_offer_add_page_shows_the_tabs_and_asks_to_save_first(manager_admin):
    response = manager_admin.get("/admin/offers/offer/add/")

    assert response.status_code == 200
    page = response.content.decode()
    for title in ["General", "Tracking", "Revenue &amp; Payout", "Test postback"]:
        assert f">{title}<" in page
    assert "Save the offer" in page


def test_adding_an_offer_stores_it_and_continue_returns_to_the_open_tab(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.post(
        "/admin/offers/offer/add/",
        offer_form(
            advertiser,
            parameters__amount="{revenue}",
            _continue="1",
            _tab="revenue-payout",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    offer = Offer.objects.get(name="Summer Sale")
    assert response["Location"] == change_url(offer) + "#revenue-payout"
    assert offer.currency == "USD"
    assert offer.parameters == {"amount": "{revenue}"}
    assert offer.revenue_value == Decimal("4.50")


def test_saving_an_offer_with_continue_keeps_the_tab_and_ignores_unknown_tabs(manager_admin):
    offer = OfferFactory()
    form = offer_form(offer.advertiser, name="Renamed", _continue="1", _tab="tracking")

    kept = manager_admin.post(change_url(offer), form)
    ignored = manager_admin.post(change_url(offer), {**form, "_tab": "<script>"})

    assert kept["Location"] == change_url(offer) + "#tracking"
    assert ignored["Location"] == change_url(offer)
    offer.refresh_from_db()
    assert offer.name == "Renamed"


def test_an_invalid_offer_is_refused_with_field_errors_not_a_500(manager_admin):
    advertiser = AdvertiserFactory()

    response = manager_admin.post(
        "/admin/offers/offer/add/",
        offer_form(
            advertiser,
            currency="U$D",
            revenue_type="CPS",
            revenue_value="150",
            parameters__amount="a b",
        ),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "currency" in errors
    assert "parameters" in errors
    assert "percentage" in str(errors)
    assert not Offer.objects.exists()


def test_revenue_and_payout_tab_shows_offer_url_events_and_create(manager_admin):
    offer = OfferFactory(parameters={"amount": "{sale}"})
    purchase = EventFactory(
        offer=offer, name="first purchase", revenue_type="CPS", revenue_value=Decimal("30")
    )
    EventFactory(offer=offer, name="level_10", allow_multiple=True)

    page = manager_admin.get(change_url(offer)).content.decode()

    assert html.escape(offer_postback_url(offer)) in page
    assert html.escape(event_postback_url(purchase)) in page
    assert "30.00 % of sale (CPS)" in page
    assert f'href="/admin/offers/event/add/?offer={offer.pk}"' in page
    assert ">Create<" in page
    assert offer_postback_url(offer) in copy_values(page)
    assert event_postback_url(purchase) in copy_values(page)


def test_tracking_tab_builds_from_the_generated_tracking_url(manager_admin):
    offer = OfferFactory()
    publisher = PublisherFactory(name="MediaHub")

    page = manager_admin.get(change_url(offer)).content.decode()

    assert f'data-base-url="{html.escape(tracking_url(offer))}"' in page
    assert f'<option value="{publisher.pk}">MediaHub (ID {publisher.pk})</option>' in page
    for sub in ["aff_sub", "aff_sub2", "aff_sub3", "aff_sub4", "aff_sub5", "source"]:
        assert f'data-sub="{sub}"' in page


def test_a_copied_offer_url_with_placeholders_replaced_is_accepted(manager_admin, client):
    offer = OfferFactory(parameters={"transaction_id": "{clickid}", "amount": "{revenue}"})
    click = ClickFactory(offer=offer)
    page = manager_admin.get(change_url(offer)).content.decode()
    copied = next(url for url in copy_values(page) if "offer_id=" in url)

    url = copied.replace("{clickid}", click.transaction_id).replace("{revenue}", "19.99")
    response = client.get(url)

    assert response.status_code == 200, response.json()
    assert response.json()["reason"] == "accepted"
    conversion = Conversion.objects.get(click=click)
    assert conversion.amount == Decimal("19.99")
    assert PostbackLog.objects.get().conversion == conversion


def test_a_copied_event_url_with_placeholders_replaced_is_accepted(manager_admin, client):
    offer = OfferFactory()
    event = EventFactory(
        offer=offer,
        name="in app purchase",
        revenue_type="CPS",
        revenue_value=Decimal("10"),
        parameters={
            "transaction_id": "{clickid}",
            "amount": "{event_revenue}",
            "currency": "{event_revenue_currency}",
        },
    )
    conversion = ConversionFactory(click=ClickFactory(offer=offer))
    page = manager_admin.get(change_url(offer)).content.decode()
    copied = next(url for url in copy_values(page) if f"event_id={event.pk}" in url)

    url = (
        copied.replace("{clickid}", conversion.click.transaction_id)
        .replace("{event_revenue}", "19.99")
        .replace("{event_revenue_currency}", "eur")
    )
    response = client.get(url)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["reason"], body["event_name"], body["revenue"]) == (
        "accepted",
        "in app purchase",
        "2.00",
    )
    record = EventRecord.objects.get(event=event)
    assert (record.currency, record.revenue) == ("EUR", Decimal("2.00"))


def test_analyst_sees_the_offer_read_only_with_masked_urls(analyst_admin):
    offer = OfferFactory()
    EventFactory(offer=offer)

    response = analyst_admin.get(change_url(offer))

    assert response.status_code == 200
    page = response.content.decode()
    assert offer.advertiser.postback_token not in page
    assert offer.advertiser.masked_token in page
    assert 'name="_save"' not in page
    assert ">Create<" not in page
    assert "Testing postbacks is for account managers" in page
    assert analyst_admin.post(change_url(offer), {"name": "x"}).status_code == 403
    assert analyst_admin.get("/admin/offers/offer/add/").status_code == 403


def test_nobody_deletes_an_offer_from_the_admin(manager_admin):
    offer = OfferFactory()

    assert manager_admin.get(f"/admin/offers/offer/{offer.pk}/delete/").status_code == 403


def test_the_events_table_warns_of_double_counting_and_inconsistent_click_id_macros(
    manager_admin,
):
    offer = OfferFactory(parameters={})
    EventFactory(
        offer=offer,
        name="purchase",
        allow_multiple=True,
        parameters={"transaction_id": "{clickid}", "amount": "{event_revenue}"},
    )
    EventFactory(offer=offer, name="level_10", parameters={})

    page = manager_admin.get(change_url(offer)).content.decode()

    warnings = re.findall(r'<p class="ct-warning" data-event-warning role="note">(.*?)</p>', page)
    assert len(warnings) == 2
    assert "every resend of the same order is recorded again" in warnings[0]
    assert "transaction_id={clickid}" in warnings[1]
    assert "transaction_id=REPLACE" in warnings[1]


def test_the_tracking_tab_offers_no_copy_before_a_publisher_is_chosen(manager_admin):
    offer = OfferFactory()

    page = manager_admin.get(change_url(offer)).content.decode()

    assert '<option value="">— choose a publisher —</option>' in page
    assert "data-tracking-copy disabled" in page
    assert "Choose a publisher first" in page


def test_amounts_of_the_offer_are_grouped_with_two_decimals(manager_admin):
    OfferFactory(revenue_type="CPA", revenue_value=Decimal("1250"), currency="EUR")

    page = manager_admin.get("/admin/offers/offer/").content.decode()

    assert "1,250.00 EUR (CPA)" in page
