"""The admin's reports page draws its charts in a real browser, with no internet."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import ConversionFactory, EventRecordFactory, PostbackLogFactory, analyst
from tracking.models import Reason

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_analyst_sees_charts_and_tables_drawn_from_local_files_only(login, live_server):
    today = timezone.now().replace(hour=12, minute=0)
    conversion = ConversionFactory(created_at=today - timedelta(days=1))
    EventRecordFactory(conversion=conversion, created_at=today, revenue=Decimal("2.00"))
    ConversionFactory(created_at=today, currency="EUR", revenue=Decimal("7.00"))
    PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, created_at=today)
    page = login(analyst())
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"/admin/tracking/eventrecord/reports/?offer={conversion.offer_id}")
    page.wait_for_function("window.clicktrailCharts && window.clicktrailCharts.length === 3")

    assert page.locator("h2", has_text="Revenue, payout and profit per day (USD)").count() == 1
    assert page.locator("h2", has_text="(EUR)").count() == 0  # another offer's
    datasets = page.evaluate("window.clicktrailCharts.map(c => c.data.datasets.map(d => d.label))")
    assert datasets[0] == ["conversions", "events"]
    assert datasets[1] == ["revenue (USD)", "payout (USD)", "profit (USD)"]
    totals = page.evaluate(
        "window.clicktrailCharts.slice(0, 2).map("
        "c => c.data.datasets.map(d => d.data.reduce((a, b) => a + Number(b), 0)))"
    )
    assert totals == [[1, 1], [7, 4, 3]]
    # The canvases were really painted.
    painted = page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map(c => {
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            return data.some(v => v !== 0);
        })"""
    )
    assert painted == [True, True, True]
    assert page.locator("#ct-table-outcomes").inner_text().count("no_conversion") == 0
    assert all(url.startswith(live_server.url) for url in requested), requested


def test_every_offer_shows_postback_outcomes_by_reason(login):
    now = timezone.now()
    PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, created_at=now)
    PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, created_at=now)
    PostbackLogFactory(reason=Reason.INVALID_SECURE, status_code=403, created_at=now)
    page = login(analyst())

    page.goto("/admin/tracking/eventrecord/reports/")
    page.wait_for_function("window.clicktrailCharts && window.clicktrailCharts.length === 2")

    labels = page.evaluate("window.clicktrailCharts[1].data.datasets.map(d => d.label)")
    assert sorted(labels) == ["Invalid secure token", "No conversion"]
    table = page.locator("#ct-table-outcomes").inner_text()
    assert "No conversion\t2\t66.7 %" in table
    assert "Invalid secure token\t1\t33.3 %" in table
    # Each outcome its own colour, the same in the chart and in the table's swatches.
    colours = page.evaluate(
        "Object.fromEntries(window.clicktrailCharts[1].data.datasets"
        ".map(d => [d.reason, d.backgroundColor]))"
    )
    assert len(set(colours.values())) == 2
    swatch = page.locator('#ct-table-outcomes .ct-swatch[data-reason="no_conversion"]')
    assert swatch.evaluate("e => e.style.background") != ""
