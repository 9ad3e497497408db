"""CSV export of the admin lists: what is filtered, streamed, spreadsheet-safe."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.utils import timezone

from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
    UserFactory,
    analyst,
)
from tracking.csv_export import csv_lines
from tracking.models import Reason

pytestmark = pytest.mark.django_db


def export(client, model: str, **params) -> list[dict[str, str]]:  # noqa: ANN001
    response = client.get(f"/admin/tracking/{model}/export.csv", params)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{model}s-')
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def analyst_browser(client):  # noqa: ANN001
    client.force_login(analyst())
    return client


def test_analysts_export_event_records_with_every_column(analyst_browser):
    event = EventFactory(name="purchase")
    record = EventRecordFactory(
        event=event,
        conversion__click__offer=event.offer,
        # Not a random one: 1 in 64 starts with "-", which the export escapes.
        conversion__click__transaction_id="Uq2tR8vWxYz0aB1cD3eF5gH7iJ9kL0mN",
        revenue=Decimal("2.50"),
        payout=Decimal("1.20"),
        amount=Decimal("25.0000"),
        currency="EUR",
        adv_sub="ORDER-7",
        created_at=datetime(2026, 11, 2, 10, 30, tzinfo=UTC),
        status="pending",
        status_reason="checking",
        status_changed_at=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
    )

    rows = export(analyst_browser, "eventrecord", period="all")

    assert rows == [
        {
            "id": str(record.pk),
            "created_at": "2026-11-02T10:30:00+00:00",
            "transaction_id": "Uq2tR8vWxYz0aB1cD3eF5gH7iJ9kL0mN",
            "offer_id": str(event.offer_id),
            "offer": event.offer.name,
            "advertiser": event.offer.advertiser.name,
            "event_id": str(event.pk),
            "event": "purchase",
            "publisher_id": str(record.publisher_id),
            "publisher": record.publisher.name,
            "conversion_id": str(record.conversion_id),
            "revenue": "2.50",
            "payout": "1.20",
            "currency": "EUR",
            "status": "pending",
            "status_reason": "checking",
            "status_changed_at": "2026-11-03T09:00:00+00:00",
            "amount": "25.0000",
            "adv_sub": "ORDER-7",
            "adv_sub2": "",
            "adv_sub3": "",
            "adv_sub4": "",
            "adv_sub5": "",
        }
    ]


def test_the_export_holds_exactly_what_the_list_filters(analyst_browser):
    offer = OfferFactory()
    mine = ConversionFactory.create_batch(3, click__offer=offer)
    ConversionFactory.create_batch(2)
    ConversionFactory(click__offer=offer, created_at=timezone.now() - timedelta(days=60))

    rows = export(analyst_browser, "conversion", offer__id__exact=offer.pk)

    assert sorted(int(row["id"]) for row in rows) == sorted(c.pk for c in mine)
    searched = export(analyst_browser, "conversion", q=mine[0].click.transaction_id)
    assert [int(row["id"]) for row in searched] == [mine[0].pk]
    assert len(export(analyst_browser, "conversion", period="all")) == 6


@override_settings(TIME_ZONE="Europe/Berlin")
def test_times_are_written_in_the_configured_time_zone(analyst_browser):
    ClickFactory(created_at=datetime(2026, 11, 2, 10, 30, tzinfo=UTC))

    rows = export(analyst_browser, "click", period="all")
    assert rows[0]["created_at"] == "2026-11-02T11:30:00+01:00"


def test_the_postback_log_exports_its_outcomes_and_parameters(analyst_browser):
    log = PostbackLogFactory(
        reason=Reason.UNKNOWN_EVENT,
        status_code=404,
        params={"transaction_id": "abc", "event_name": "buy"},
    )
    PostbackLogFactory(reason=Reason.ACCEPTED, status_code=200, conversion=ConversionFactory())

    rows = export(analyst_browser, "postbacklog", reason__exact="unknown_event")

    assert [row["id"] for row in rows] == [str(log.pk)]
    assert rows[0]["status_code"] == "404"
    assert rows[0]["reason"] == "unknown_event"
    assert json.loads(rows[0]["params"]) == {"transaction_id": "abc", "event_name": "buy"}


def test_values_a_spreadsheet_would_run_as_formulas_are_neutralised(analyst_browser):
    ConversionFactory(adv_sub='=HYPERLINK("http://evil")', adv_sub2="+1", adv_sub3="@x")

    row = export(analyst_browser, "conversion")[0]
    assert row["adv_sub"] == '\'=HYPERLINK("http://evil")'
    assert row["adv_sub2"] == "'+1"
    assert row["adv_sub3"] == "'@x"
    assert row["revenue"] == "5.00"


def test_rows_are_produced_one_at_a_time_from_an_iterator():
    def rows():
        yield (1, "a")
        yield (2, None)
        raise AssertionError("the export must not read ahead")  # pragma: no cover

    lines = csv_lines(["id", "name"], rows())
    assert next(lines) == "id,name\r\n"
    assert next(lines) == "1,a\r\n"
    assert next(lines) == "2,\r\n"


def test_users_without_a_role_cannot_export(client):
    client.force_login(UserFactory())
    assert client.get("/admin/tracking/eventrecord/export.csv").status_code == 403


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/admin/tracking/conversion/export.csv")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_invalid_filter_is_a_400_not_an_error(analyst_browser):
    response = analyst_browser.get("/admin/tracking/conversion/export.csv", {"since": "nope"})
    assert response.status_code == 400
