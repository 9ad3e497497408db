"""An account manager, as a new user would, sets up an offer with two events and gets
accepted test postbacks; an analyst cannot edit. Real Chromium against the live server."""

import re
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import Page, expect

from offers.models import Advertiser, Event, Offer
from tests.factories import (
    AdvertiserFactory,
    OfferFactory,
    PublisherFactory,
    account_manager,
    analyst,
)
from tracking.models import Click, Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db(transaction=True)


def choose_advertiser(page: Page, name: str) -> None:
    """The advertiser field is an autocomplete (select2) that asks the server as you type."""
    page.click(".field-advertiser .select2-selection")
    page.fill(".select2-search__field", name[:5])
    page.click(f".select2-results__option:has-text('{name}')")


def open_tab(page: Page, title: str) -> None:
    page.get_by_role("tab", name=title).click()
    expect(page.get_by_role("tab", name=title)).to_have_attribute("aria-selected", "true")


def create_event(page: Page, name: str, *, preset: str | None, revenue: tuple[str, str]) -> None:
    page.get_by_role("link", name="Create", exact=True).click()
    page.wait_for_url(re.compile(r"/admin/offers/event/add/\?offer=\d+"))
    page.get_by_label("Event name").fill(name)
    page.get_by_label("Revenue type").select_option(revenue[0])
    page.get_by_label("Revenue value").fill(revenue[1])
    page.get_by_label("Payout type").select_option("CPA")
    page.get_by_label("Payout value").fill("1.50")
    if preset:
        page.get_by_role("button", name=preset, exact=True).click()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/admin/offers/offer/\d+/change/\?event=\d+#revenue-payout"))


def test_manager_sets_up_an_offer_with_two_events_and_gets_accepted_postbacks(login, tracking_base):
    page = login(account_manager())
    AdvertiserFactory(name="Northwind Games")
    PublisherFactory(name="MediaHub")

    # The offer: General tab, then the conversion's money on Revenue & Payout.
    page.goto("/admin/offers/offer/add/")
    expect(page.get_by_role("tab", name="General")).to_have_attribute("aria-selected", "true")
    page.get_by_label("Name").fill("Dragon Quest – Install")
    choose_advertiser(page, "Northwind Games")
    page.get_by_label("Destination url").fill("https://shop.example.com/?click={transaction_id}")
    open_tab(page, "Revenue & Payout")
    page.fill("#id_revenue_value", "2.50")
    page.fill("#id_payout_value", "1.80")
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_url(re.compile(r"/admin/offers/offer/\d+/change/#revenue-payout"))
    offer = Offer.objects.get(name="Dragon Quest – Install")
    expect(page.get_by_role("tab", name="Revenue & Payout")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("[data-offer-postback-url]")).to_contain_text(f"offer_id={offer.pk}")

    # Two events: one with the AppsFlyer preset (CPS, so it maps the revenue), one plain.
    create_event(page, "purchase", preset="AppsFlyer", revenue=("CPS", "30"))
    purchase = Event.objects.get(offer=offer, name="purchase")
    assert purchase.parameters == {
        "transaction_id": "{clickid}",
        "amount": "{event_revenue}",
        "currency": "{event_revenue_currency}",
        "adv_sub": "{af_order_id}",
    }
    expect(page.get_by_role("tab", name="Revenue & Payout")).to_have_attribute(
        "aria-selected", "true"
    )
    row = page.locator(f'[data-event-row="{purchase.pk}"]')
    expect(row).to_contain_text("purchase")
    expect(row.locator("[data-event-url]")).to_contain_text("transaction_id={clickid}")
    expect(page.locator(".messagelist")).to_contain_text(f"(event ID {purchase.pk}) was created")

    create_event(page, "level_10", preset=None, revenue=("FIXED", "1.00"))
    level = Event.objects.get(offer=offer, name="level_10")
    level_row = page.locator(f'[data-event-row="{level.pk}"]')
    expect(level_row).to_be_visible()

    # Copy the second event's URL: the button says so and the clipboard holds the URL.
    level_row.get_by_role("button", name="Copy").click()
    expect(level_row.get_by_role("button", name="Copied ✓")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == level_row.locator("[data-event-url]").inner_text().strip()
    assert f"event_id={level.pk}&event_name=level_10" in copied

    # Test postback: a test click, the conversion fired for real, then the events.
    open_tab(page, "Test postback")
    page.get_by_role("button", name="Make a test click").click()
    expect(page.locator("[data-test-click-info]")).to_contain_text("Test click made")
    transaction_id = page.locator("[data-test-transaction]").input_value()
    click = Click.objects.get(transaction_id=transaction_id)
    assert click.is_test and click.offer == offer

    page.get_by_role("button", name="Check (dry run)").click()
    expect(page.locator("[data-test-verdict]")).to_contain_text("Dry run: would be accepted")
    assert not Conversion.objects.exists()
    page.get_by_role("button", name="Fire for real").click()
    expect(page.locator("[data-test-verdict]")).to_contain_text("Fired: accepted and recorded")
    expect(page.locator("[data-test-links]")).to_contain_text("See the record")
    assert Conversion.objects.get(click=click).revenue == Decimal("2.50")

    page.get_by_label("Send").select_option(str(purchase.pk))
    page.get_by_role("button", name="Check (dry run)").click()
    expect(page.locator("[data-test-verdict]")).to_contain_text("amount_required")
    page.locator("#ct-test-amount").fill("19.99")
    page.get_by_role("button", name="Fire for real").click()
    expect(page.locator("[data-test-verdict]")).to_contain_text("Fired: accepted and recorded")
    expect(page.locator("[data-test-url]")).to_contain_text(
        f"transaction_id={transaction_id}&offer_id={offer.pk}"
        f"&event_id={purchase.pk}&event_name=purchase&amount=19.99"
    )
    record = EventRecord.objects.get(event=purchase)
    assert record.revenue == Decimal("6.00")  # 30 % of 19.99, rounded half-up

    # The URL copied from the admin, its placeholder replaced, is accepted by the endpoint.
    answer = requests.get(copied.replace("REPLACE", transaction_id), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["event_name"] == "level_10"
    assert EventRecord.objects.filter(event=level, click=click).exists()
    assert PostbackLog.objects.filter(reason="accepted").count() == 3


def test_tabs_switch_without_a_reload_and_the_open_tab_survives_a_save(login, tracking_base):
    page = login(account_manager())
    offer = OfferFactory()
    publisher = PublisherFactory(name="MediaHub")

    page.goto(f"/admin/offers/offer/{offer.pk}/change/")
    page.evaluate("window.__sameDocument = true")
    open_tab(page, "Tracking")
    expect(page.locator("#panel-general")).to_be_hidden()
    page.locator("#panel-tracking").get_by_label("Publisher").select_option(str(publisher.pk))
    page.locator("#ct-sub-aff_sub").fill("campaign 7")
    expect(page.locator("[data-tracking-url]")).to_have_text(
        f"{tracking_base}/click?offer_id={offer.pk}&aff_id={publisher.pk}&aff_sub=campaign%207"
    )
    link = page.locator("[data-tracking-url]").inner_text()
    open_tab(page, "Revenue & Payout")
    open_tab(page, "Tracking")
    assert page.evaluate("window.__sameDocument") is True

    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_url(re.compile(r"#tracking$"))
    expect(page.get_by_role("tab", name="Tracking")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-tracking")).to_be_visible()

    # The tracking link built there, followed, records a click and redirects.
    followed = requests.get(link, allow_redirects=False, timeout=10)
    assert followed.status_code == 302
    assert Click.objects.get(publisher=publisher).aff_sub == "campaign 7"


def test_a_tab_with_errors_opens_after_a_failed_save(login):
    page = login(account_manager())
    offer = OfferFactory()

    page.goto(f"/admin/offers/offer/{offer.pk}/change/")
    open_tab(page, "Revenue & Payout")
    page.fill("#id_payout_value", "-5")
    open_tab(page, "General")
    page.get_by_role("button", name="Save and continue editing").click()

    expect(page.locator(".errornote")).to_be_visible()
    expect(page.get_by_role("tab", name="Revenue & Payout")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#panel-revenue-payout .errorlist")).to_be_visible()


def test_advertiser_token_is_masked_revealed_on_demand_and_rotated(login):
    page = login(account_manager())
    advertiser = AdvertiserFactory(name="Northwind Games")
    old_token = advertiser.postback_token

    page.goto(f"/admin/offers/advertiser/{advertiser.pk}/change/")
    token = page.locator("code.ct-token")
    expect(token).to_have_text(advertiser.masked_token)
    page.get_by_role("button", name="Reveal").click()
    expect(token).to_have_text(old_token)
    expect(page.locator("[data-global-url]")).to_contain_text(f"secure={old_token}")

    page.get_by_role("link", name="Rotate token…").click()
    expect(page.locator("[data-rotate-warning]")).to_contain_text("stops working at once")
    page.get_by_role("button", name="Yes, rotate the token").click()
    expect(page.locator(".messagelist")).to_contain_text("The old token no longer works")
    assert Advertiser.objects.get(pk=advertiser.pk).postback_token != old_token


def test_analyst_sees_the_offer_but_cannot_edit_or_test(login):
    page = login(analyst())
    offer = OfferFactory()
    event = Event.objects.create(
        offer=offer,
        name="purchase",
        revenue_type="CPA",
        revenue_value=Decimal("2"),
        payout_type="CPA",
        payout_value=Decimal("1"),
    )

    page.goto(f"/admin/offers/offer/{offer.pk}/change/")
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    open_tab(page, "Revenue & Payout")
    expect(page.locator(f'[data-event-row="{event.pk}"]')).to_be_visible()
    expect(page.get_by_role("link", name="Create", exact=True)).to_have_count(0)
    expect(page.locator("[data-offer-postback-url]")).not_to_contain_text(
        offer.advertiser.postback_token
    )
    open_tab(page, "Test postback")
    expect(page.locator("#panel-test-postback")).to_contain_text(
        "Testing postbacks is for account managers"
    )

    response = page.goto(f"/admin/offers/event/add/?offer={offer.pk}")
    assert response.status == 403
