"""The admin's reports page: period and offer, per-day tables beside the charts, errors."""

import json
import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.factories import (
    ConversionFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
    UserFactory,
    analyst,
)
from tracking.models import Reason

pytestmark = pytest.mark.django_db

URL = "/admin/tracking/eventrecord/reports/"


@pytest.fixture
def analyst_browser(client):  # noqa: ANN001
    client.force_login(analyst())
    return client


def chart_data(response) -> dict:  # noqa: ANN001
    match = re.search(
        r'<script id="ct-report-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "no chart data"
    return json.loads(match.group(1))


def local_noon(day) -> datetime:  # noqa: ANN001
    return timezone.make_aware(datetime.combine(day, time(12)))


def test_the_default_period_is_the_last_30_days_of_every_offer(analyst_browser):
    today = timezone.localdate()
    ConversionFactory(created_at=local_noon(today))
    ConversionFactory(created_at=local_noon(today - timedelta(days=40)))

    response = analyst_browser.get(URL)

    assert response.status_code == 200
    data = chart_data(response)
    assert data["days"][0] == (today - timedelta(days=29)).isoformat()
    assert data["days"][-1] == today.isoformat()
    assert sum(data["conversions"]) == 1


def test_charts_and_tables_show_each_day_per_currency_for_the_chosen_offer(analyst_browser):
    offer = OfferFactory()
    day = timezone.localdate() - timedelta(days=3)
    conversion = ConversionFactory(
        click__offer=offer, created_at=local_noon(day), revenue=Decimal("5.00")
    )
    EventRecordFactory(
        conversion=conversion,
        created_at=local_noon(day + timedelta(days=1)),
        revenue=Decimal("2.00"),
        payout=Decimal("0.50"),
    )
    EventRecordFactory(
        conversion=conversion,
        created_at=local_noon(day + timedelta(days=1)),
        revenue=Decimal("3.00"),
        payout=Decimal("1.00"),
        currency="EUR",
    )
    ConversionFactory(created_at=local_noon(day))  # another offer

    response = analyst_browser.get(
        URL,
        {
            "since": day.isoformat(),
            "until": (day + timedelta(days=2)).isoformat(),
            "offer": offer.pk,
        },
    )

    data = chart_data(response)
    assert data["days"] == [(day + timedelta(days=n)).isoformat() for n in range(3)]
    assert data["conversions"] == [1, 0, 0]
    assert data["events"] == [0, 2, 0]
    assert data["money"]["USD"]["revenue"] == ["5.00", "2.00", "0.00"]
    assert data["money"]["USD"]["profit"] == ["2.00", "1.50", "0.00"]
    assert data["money"]["EUR"]["payout"] == ["0.00", "1.00", "0.00"]
    html = response.content.decode()
    assert "Revenue, payout and profit per day (EUR)" in html
    assert (
        "<th>total</th><th>1</th><th>1</th><th>7.00 USD</th><th>3.50 USD</th><th>3.50 USD</th>"
        in html
    )
    assert f'<option value="{offer.pk}" selected>' in html


def test_postback_outcomes_are_counted_by_reason_with_their_share(analyst_browser):
    now = timezone.now()
    for reason in [
        Reason.ACCEPTED,
        Reason.NO_CONVERSION,
        Reason.NO_CONVERSION,
        Reason.UNKNOWN_EVENT,
    ]:
        PostbackLogFactory(
            reason=reason,
            status_code=200 if reason == Reason.ACCEPTED else 422,
            conversion=ConversionFactory() if reason == Reason.ACCEPTED else None,
            created_at=now,
        )

    response = analyst_browser.get(URL)

    data = chart_data(response)
    assert sum(data["outcomes"]["no_conversion"]) == 2
    assert sum(data["outcomes"]["accepted"]) == 1
    html = response.content.decode()
    assert re.search(
        r'title="no_conversion"><span class="ct-swatch" data-reason="no_conversion"></span>'
        r"No conversion</a></td><td>2</td><td>50.0 %</td>",
        html,
    )
    assert "reason__exact=no_conversion" in html  # links to the filtered log


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_days_are_in_the_configured_time_zone(analyst_browser):
    # 20:00 UTC on the 1st is 05:00 on the 2nd in Tokyo.
    ConversionFactory(created_at=datetime.fromisoformat("2026-11-01T20:00:00+00:00"))

    data = chart_data(analyst_browser.get(URL, {"since": "2026-11-01", "until": "2026-11-02"}))
    assert data["conversions"] == [0, 1]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-13-01"},
        {"since": "2026-11-10", "until": "2026-11-01"},
        {"since": "2020-01-01", "until": "2026-01-01"},
        {"until": "9999-12-31"},
        {"offer": "x"},
    ],
)
def test_bad_input_shows_a_message_not_an_error_page(analyst_browser, params):
    response = analyst_browser.get(URL, params)

    assert response.status_code == 400
    assert 'class="errorlist ct-errors"' in response.content.decode()


def test_the_page_needs_a_role(client):
    client.force_login(UserFactory())
    assert client.get(URL).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302


def test_headline_totals_per_currency_sit_above_the_charts(analyst_browser):
    today = timezone.localdate()
    usd = ConversionFactory(
        created_at=local_noon(today), revenue=Decimal("1234.50"), payout=Decimal("234.50")
    )
    ConversionFactory(
        created_at=local_noon(today),
        currency="EUR",
        revenue=Decimal("3.00"),
        payout=Decimal("4.00"),
    )
    PostbackLogFactory(
        reason=Reason.ACCEPTED, status_code=200, conversion=usd, created_at=local_noon(today)
    )
    PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, created_at=local_noon(today))

    html = analyst_browser.get(URL).content.decode()

    headline = html.split('<section class="ct-headline"')[1].split("</section>")[0]
    assert html.index('class="ct-headline"') < html.index("<canvas")
    usd = headline.split('data-currency="USD"')[1].split("</div>\n    </dl>")[0]
    assert '<dd data-total="revenue">1,234.50 USD</dd>' in usd
    assert '<dd data-total="profit">1,000.00 USD</dd>' in usd
    assert '<dd data-total="conversions">1</dd>' in usd
    eur = headline.split('data-currency="EUR"')[1]
    assert '<dd data-total="profit" class="ct-negative">-1.00 EUR</dd>' in eur
    assert '<dd data-total="accepted">1 (50.0 %)</dd>' in headline
