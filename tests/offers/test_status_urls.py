"""The generated status postback URLs (one for the conversion, one per event): built in
offers.postback_urls, shown with copy buttons on the offer's Revenue & Payout tab, and
accepted by ``/postback/status`` once the advertiser fills them in."""

import re
from html import unescape
from urllib.parse import quote, urlsplit

import pytest

from offers.postback_urls import conversion_status_url, event_status_url
from tests.conftest import admin_client_for
from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    account_manager,
    analyst,
)
from tracking.models import Conversion, EventRecord

pytestmark = pytest.mark.django_db

BASE = "https://track.example.com"


@pytest.fixture(autouse=True)
def tracking_base_url(settings):
    settings.TRACKING_BASE_URL = BASE


def fire(client, url: str, substitutions: list[tuple[str, str]]):
    """Replace each REPLACE in order, as the advertiser's system fills in its macros."""
    for value in substitutions:
        url = url.replace("REPLACE", quote(value, safe=""), 1)
    assert "REPLACE" not in url
    parts = urlsplit(url)
    assert parts.path == "/postback/status"
    return client.get(f"{parts.path}?{parts.query}")


def test_the_conversion_status_url_has_the_offer_and_the_status_parameters():
    offer = OfferFactory(parameters={"transaction_id": "{clickid}"})
    token = offer.advertiser.postback_token
    assert conversion_status_url(offer) == (
        f"{BASE}/postback/status?secure={token}&transaction_id={{clickid}}&offer_id={offer.pk}"
        "&status=REPLACE&reason=REPLACE"
    )


def test_an_event_that_allows_multiple_records_carries_adv_sub():
    event = EventFactory(name="in app purchase", allow_multiple=True)
    url = event_status_url(event)
    assert f"&event_id={event.pk}&event_name=in%20app%20purchase&adv_sub=REPLACE&status=" in url
    assert "adv_sub" not in event_status_url(EventFactory())


def test_the_filled_in_urls_reject_the_conversion_and_an_event_record(client):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, allow_multiple=True, name="order")
    record = EventRecordFactory(conversion=conversion, event=event, adv_sub="A-1")
    EventRecordFactory(conversion=conversion, event=event, adv_sub="A-2")
    tid = conversion.click.transaction_id

    event_answer = fire(client, event_status_url(event), [tid, "A-1", "rejected", "refunded"])
    conversion_answer = fire(
        client, conversion_status_url(conversion.offer), [tid, "rejected", "chargeback"]
    )

    assert (event_answer.json()["reason"], event_answer.json()["id"]) == ("updated", record.pk)
    assert conversion_answer.json()["reason"] == "updated"
    assert EventRecord.objects.get(pk=record.pk).status_reason == "refunded"
    assert Conversion.objects.get().status_reason == "chargeback"


def test_the_revenue_and_payout_tab_shows_the_status_urls_with_copy_buttons():
    offer = OfferFactory()
    event = EventFactory(offer=offer, name="purchase")

    html = (
        admin_client_for(account_manager())
        .get(f"/admin/offers/offer/{offer.pk}/change/")
        .content.decode()
    )

    tab = html[html.index('id="panel-revenue-payout"') : html.index('id="panel-test-postback"')]
    rows = re.findall(r'<tr data-status-url-row="([^"]+)">(.*?)</tr>', tab, re.S)
    assert [key for key, _ in rows] == ["conversion", str(event.pk)]
    for (_, row), url in zip(
        rows, [conversion_status_url(offer), event_status_url(event)], strict=True
    ):
        assert (
            unescape(re.search(r"<code[^>]*>([^<]*)</code>", row.split("</td>", 1)[1]).group(1))
            == url
        )
        assert f'data-copy="{url}"'.replace("&", "&amp;") in row


def test_analysts_see_the_status_urls_with_the_token_masked_and_no_copy_button():
    offer = OfferFactory()
    token = offer.advertiser.postback_token

    html = (
        admin_client_for(analyst()).get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()
    )

    assert "data-conversion-status-url" in html
    assert token not in html
