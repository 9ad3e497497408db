"""Issue #20 as people meet it, in Chromium at a 1440×900 window: a new analyst made as the
README says logs in and finds Reports; the money is on screen in every record list; the
Reports link keeps a list's filters; the presets cannot silently double count."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from offers.models import Event
from tests.browser.conftest import log_in_as
from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
    PublisherFactory,
    UserFactory,
    account_manager,
    analyst,
)
from tracking.models import Reason

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-long-analyst-passphrase-7"


def test_a_new_analyst_made_as_the_readme_says_logs_in_and_reaches_reports(wide_page):
    ConversionFactory(revenue=Decimal("1234.50"), payout=Decimal("234.50"))
    admin = wide_page(UserFactory(username="root", is_superuser=True))

    # README, "Roles": Users → Add user, a username and a password, then the group; no more.
    admin.goto("/admin/auth/user/add/")
    admin.fill("#id_username", "ana")
    admin.fill("#id_password1", NEW_PASSWORD)
    admin.fill("#id_password2", NEW_PASSWORD)
    admin.get_by_role("button", name="Save", exact=True).click()
    admin.wait_for_url(re.compile(r"/admin/auth/user/\d+/change/"))
    admin.select_option("#id_groups_from", label="Analysts")
    admin.click("#id_groups_add")
    expect(admin.locator("#id_is_staff")).not_to_be_checked()
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.locator(".messagelist .success")).to_be_visible()

    page = wide_page()
    log_in_as(page, "ana", NEW_PASSWORD)
    home = page.locator("#content-main")
    home.get_by_role("link", name="Reports", exact=True).click()

    page.wait_for_url("**/admin/tracking/eventrecord/reports/")
    expect(page.locator("h1")).to_have_text("Reports")
    usd = page.locator('.ct-stat-card[data-currency="USD"]')
    expect(usd.locator('[data-total="revenue"]')).to_have_text("1,234.50 USD")
    expect(usd.locator('[data-total="profit"]')).to_have_text("1,000.00 USD")
    # Reached from the sidebar too, on any page.
    page.goto("/admin/tracking/conversion/")
    page.locator("#nav-sidebar").get_by_role("link", name="Reports", exact=True).click()
    page.wait_for_url("**/admin/tracking/eventrecord/reports/")


def test_a_valid_account_without_a_role_is_told_so_at_login(wide_page):
    UserFactory(username="nobody", is_staff=False)
    page = wide_page()

    page.goto("/admin/login/")
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    expect(page.locator(".errornote")).to_contain_text("has no access to the admin")


def realistic_records() -> None:
    """Long names and big amounts: what makes a list wide."""
    offer = OfferFactory(name="Dragon Quest Mobile – Install (iOS, US)")
    publisher = PublisherFactory(name="AppPromo Ltd Performance")
    purchase = EventFactory(offer=offer, name="first_transaction_completed", allow_multiple=True)
    now = timezone.now()
    for n in range(3):
        conversion = ConversionFactory(
            click__offer=offer,
            click__publisher=publisher,
            revenue=Decimal("12345.67"),
            payout=Decimal("9876.54"),
            amount=Decimal("123456.7800"),
            adv_sub=f"ORDER-2026-11-{n:06d}",
            created_at=now - timedelta(hours=n),
        )
        EventRecordFactory(
            conversion=conversion,
            event=purchase,
            revenue=Decimal("1500.00"),
            payout=Decimal("2100.00"),
            amount=Decimal("99999.9900"),
            adv_sub=f"ORDER-2026-11-{n:06d}",
            created_at=now - timedelta(hours=n),
        )
        PostbackLogFactory(
            reason=Reason.DUPLICATE_EVENT,
            status_code=409,
            offer=offer,
            event=purchase,
            params={"amount": "99999.99", "adv_sub": f"ORDER-2026-11-{n:06d}"},
            created_at=now - timedelta(hours=n),
        )


def fits(page: Page, selector: str) -> bool:
    """The element ends inside the window and inside the list's own (scrolling) box."""
    return page.evaluate(
        """s => { const e = document.querySelector(s); const r = e.getBoundingClientRect();
                  const box = document.querySelector('.results').getBoundingClientRect();
                  return r.width > 0 && r.right <= innerWidth && r.right <= box.right + 0.5; }""",
        selector,
    )


@pytest.mark.parametrize(
    ("model", "columns"),
    [
        (
            "conversion",
            [
                "revenue_display",
                "payout_display",
                "profit_display",
                "currency_code",
                "status_display",
            ],
        ),
        (
            "eventrecord",
            [
                "revenue_display",
                "payout_display",
                "profit_display",
                "currency_code",
                "status_display",
            ],
        ),
        ("postbacklog", ["reason_display", "amount_param", "adv_sub_param", "status_display"]),
    ],
)
def test_count_and_money_are_on_screen_without_scrolling_sideways(wide_page, model, columns):
    realistic_records()
    page = wide_page(analyst())

    page.goto(f"/admin/tracking/{model}/")

    scroll = page.evaluate(
        "() => { const r = document.querySelector('.results');"
        " return [r.scrollWidth, r.clientWidth, document.documentElement.scrollWidth]; }"
    )
    assert scroll[0] <= scroll[1], f"the list scrolls sideways: {scroll}"
    assert scroll[2] <= 1440, f"the page scrolls sideways: {scroll}"
    for column in columns:
        assert fits(page, f"#result_list th.column-{column}"), column
        assert fits(page, f"#result_list td.field-{column}"), column
    # The totals: every header sits over its value, right edges aligned, all on screen.
    totals = page.locator("table.ct-totals")
    expect(totals).to_be_visible()
    headers = totals.locator("thead th")
    first_row = totals.locator("tbody tr").first.locator("th, td")
    assert headers.count() == first_row.count()
    names = [headers.nth(i).inner_text().strip().lower() for i in range(headers.count())]
    if model == "postbacklog":
        assert names == ["reason", "count"]
    else:
        assert names == ["status", "currency", "count", "revenue", "payout", "profit"]
        expect(first_row.nth(0)).to_have_text("approved")
        expect(first_row.nth(3)).to_have_text(
            "37,037.01 USD" if model == "conversion" else "4,500.00 USD"
        )
    for i in range(1, headers.count()):
        head, value = headers.nth(i).bounding_box(), first_row.nth(i).bounding_box()
        assert abs((head["x"] + head["width"]) - (value["x"] + value["width"])) < 1.5, names[i]
        assert value["x"] + value["width"] <= 1440, names[i]


def test_the_reports_link_keeps_the_lists_offer_and_period(wide_page):
    realistic_records()
    other = OfferFactory(name="Another offer")
    ConversionFactory(click__offer=other)
    page = wide_page(analyst())

    page.goto("/admin/tracking/eventrecord/")
    page.locator("#changelist-filter").get_by_role("link", name="Dragon Quest Mobile").click()
    page.locator("#changelist-filter").get_by_role("link", name="Last 7 days").click()
    expect(page.locator("#changelist-filter li.selected", has_text="Last 7 days")).to_be_visible()
    page.locator(".object-tools").get_by_role("link", name="Reports").click()

    today = timezone.localdate()
    page.wait_for_url(re.compile(r"/admin/tracking/eventrecord/reports/\?"))
    expect(page.locator("input[name=since]")).to_have_value((today - timedelta(days=6)).isoformat())
    expect(page.locator("input[name=until]")).to_have_value(today.isoformat())
    selected = page.locator("select[name=offer] option:checked")
    expect(selected).to_contain_text("Dragon Quest Mobile")
    # Only that offer's money: the other offer's conversion is not counted.
    expect(
        page.locator('.ct-stat-card[data-currency="USD"] [data-total="conversions"]')
    ).to_have_text("3")


def event_form_for(page: Page, offer_id: int) -> None:
    page.goto(f"/admin/offers/event/add/?offer={offer_id}")
    page.get_by_label("Event name").fill("purchase")
    page.get_by_label("Revenue type").select_option("CPS")
    page.get_by_label("Revenue value").fill("30")
    page.get_by_label("Payout type").select_option("CPS")
    page.get_by_label("Payout value").fill("20")
    page.get_by_label("Allow multiple events with the same click ID").check()


def test_the_presets_cannot_silently_double_count(wide_page):
    offer = OfferFactory(name="Space Tycoon", parameters={})
    page = wide_page(account_manager())
    event_form_for(page, offer.pk)
    double_count = page.locator("[data-double-count-warning]")
    mismatch = page.locator("[data-mismatch-warning]")
    adv_sub = page.locator("#id_parameters__adv_sub")

    page.get_by_role("button", name="Generic", exact=True).click()
    expect(double_count).to_be_visible()
    expect(double_count).to_contain_text("every resend of the same order is recorded again")

    # AppsFlyer has an order-ID macro: adv_sub is filled and resends are duplicates.
    page.get_by_role("button", name="AppsFlyer", exact=True).click()
    expect(adv_sub).to_have_value("{af_order_id}")
    expect(double_count).to_be_hidden()
    expect(page.locator("[data-preset-note]")).to_contain_text("{af_order_id}")
    # But the offer's conversion URL still has REPLACE: the URLs would disagree.
    expect(mismatch).to_be_visible()
    expect(mismatch).to_contain_text("transaction_id={clickid}")

    # Adjust has none: adv_sub is left out (not AppsFlyer's macro kept) and the warning is back.
    page.get_by_role("button", name="Adjust", exact=True).click()
    expect(adv_sub).to_have_value("")
    expect(double_count).to_be_visible()
    expect(page.locator("[data-preset-note]")).to_contain_text("callback parameter adv_sub")

    # Saved anyway, the warning follows the event: in the message and beside its URL.
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/admin/offers/offer/\d+/change/\?event=\d+#revenue-payout"))
    expect(page.locator(".messagelist .warning")).to_contain_text("recorded again")
    row = page.locator(f'[data-event-row="{Event.objects.get(offer=offer).pk}"]')
    expect(row.locator("[data-event-warning]").first).to_contain_text("recorded again")

    # Unticking Allow multiple (once per click) needs no adv_sub.
    event_form_for(page, offer.pk)
    page.get_by_label("Allow multiple events with the same click ID").uncheck()
    expect(double_count).to_be_hidden()


def test_the_tracking_tab_copies_nothing_before_a_publisher_is_chosen(wide_page, tracking_base):
    offer = OfferFactory()
    publisher = PublisherFactory(name="MediaHub")
    page = wide_page(account_manager())

    page.goto(f"/admin/offers/offer/{offer.pk}/change/#tracking")
    copy = page.locator("[data-tracking-copy]")
    expect(copy).to_be_disabled()
    page.locator("#ct-tracking-publisher").select_option(str(publisher.pk))

    expect(copy).to_be_enabled()
    expect(page.locator("[data-tracking-url]")).to_contain_text(f"aff_id={publisher.pk}")


def test_the_test_postback_tab_shows_no_empty_url_to_copy_after_an_error(wide_page):
    offer = OfferFactory()
    page = wide_page(account_manager())
    page.goto(f"/admin/offers/offer/{offer.pk}/change/#test-postback")

    page.get_by_role("button", name="Check (dry run)").click()

    expect(page.locator("[data-test-verdict]")).to_contain_text("Make a test click")
    expect(page.locator("[data-test-url-row]")).to_be_hidden()
    expect(page.locator("[data-test-result] .ct-copy")).to_be_hidden()
    # Room for a whole transaction_id (up to 64 characters).
    page.get_by_role("button", name="Make a test click").click()
    field = page.locator("#ct-test-transaction")
    expect(field).not_to_have_value("")
    width = field.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert width, "the transaction_id does not fit its field"
    page.get_by_role("button", name="Check (dry run)").click()
    expect(page.locator("[data-test-url-row]")).to_be_visible()
