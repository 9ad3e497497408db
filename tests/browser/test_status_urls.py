"""An account manager copies the status postback URLs from the offer's Revenue & Payout tab,
and the advertiser's filled-in copy rejects the conversion. Real Chromium, live server."""

from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from tests.factories import ConversionFactory, EventFactory, account_manager
from tracking.models import Conversion

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_copied_status_url_rejects_the_conversion(login, tracking_base):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, name="purchase")
    page = login(account_manager())

    page.goto(f"/admin/offers/offer/{conversion.offer_id}/change/#revenue-payout")
    table = page.locator("[data-status-urls]")
    expect(table).to_be_visible()
    expect(table.locator(f'[data-status-url-row="{event.pk}"]')).to_contain_text(
        f"event_id={event.pk}&event_name=purchase"
    )
    row = table.locator('[data-status-url-row="conversion"]')
    row.get_by_role("button", name="Copy").click()
    expect(row.get_by_role("button", name="Copied ✓")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == row.locator("[data-conversion-status-url]").inner_text().strip()
    assert copied.startswith(f"{tracking_base}/postback/status?")

    filled = copied
    for value in (conversion.click.transaction_id, "rejected", "refunded order"):
        filled = filled.replace("REPLACE", quote(value, safe=""), 1)
    answer = requests.get(filled, timeout=10)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["reason"], answer.json()["record_status"]) == ("updated", "rejected")
    assert Conversion.objects.get().status_reason == "refunded order"
