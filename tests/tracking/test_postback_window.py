"""Check 7a over HTTP (docs/postbacks.md): a conversion for a click older than its offer's
conversion window answers 422 click_expired and records nothing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from offers.models import Offer
from tests.factories import ClickFactory, ConversionFactory, EventFactory, OfferFactory
from tracking.models import Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def aged_click(days: float, **offer: object):  # noqa: ANN201
    return ClickFactory(
        created_at=timezone.now() - timedelta(days=days),
        **{f"offer__{k}": v for k, v in offer.items()},
    )


def convert(client, click, **extra: str):  # noqa: ANN001, ANN201
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    return client.get("/postback", params | extra)


def test_a_new_offer_has_a_window_of_90_days():
    assert Offer.objects.get(pk=OfferFactory().pk).conversion_window_days == 90


def test_a_conversion_inside_the_window_is_accepted(client):
    click = aged_click(89.9)

    assert convert(client, click).status_code == 200


def test_a_conversion_for_a_click_older_than_the_window_is_refused(client):
    click = aged_click(7.01, conversion_window_days=7)

    response = convert(client, click)

    assert response.status_code == 422
    body = response.json()
    assert (body["status"], body["reason"]) == ("rejected", "click_expired")
    assert "7 days" in body["message"]
    assert not Conversion.objects.exists()
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.click_id) == ("click_expired", 422, click.pk)


def test_a_resent_conversion_is_still_a_duplicate_after_the_window(client):
    conversion = ConversionFactory(click=aged_click(400))

    response = convert(client, conversion.click)

    assert (response.status_code, response.json()["reason"]) == (409, "duplicate_conversion")


def test_an_offer_without_a_window_converts_clicks_of_any_age(client):
    click = aged_click(3650, conversion_window_days=None)

    assert convert(client, click).status_code == 200


def test_events_of_a_conversion_made_in_time_are_not_bounded(client):
    conversion = ConversionFactory(click=aged_click(400, conversion_window_days=1))
    event = EventFactory(offer=conversion.offer)

    response = convert(client, conversion.click, event_id=str(event.pk))

    assert response.status_code == 200
    assert EventRecord.objects.get().conversion == conversion


def test_the_window_is_checked_before_the_amount(client):
    click = aged_click(2, conversion_window_days=1, revenue_type="CPS", revenue_value=10)

    assert convert(client, click).json()["reason"] == "click_expired"


def test_the_one_statement_path_refuses_an_expired_click(client):
    # The first postback fills this process's cache, so the next (naming its offer) is tried
    # in one statement on PostgreSQL: its condition on the click's time must hold it back.
    warm = aged_click(0, conversion_window_days=2)
    expired = ClickFactory(offer=warm.offer, created_at=timezone.now() - timedelta(days=3))
    fresh = ClickFactory(offer=warm.offer, created_at=timezone.now() - timedelta(days=1))
    assert convert(client, warm).status_code == 200

    refused = convert(client, expired, offer_id=str(warm.offer_id))
    with CaptureQueriesContext(connection) as captured:
        accepted = convert(client, fresh, offer_id=str(warm.offer_id))
    answers = [refused, accepted]

    if connection.vendor == "postgresql":  # the accepted one was indeed one statement
        assert len([q for q in captured if "SAVEPOINT" not in q["sql"]]) == 1

    assert [(a.status_code, a.json()["reason"]) for a in answers] == [
        (422, "click_expired"),
        (200, "accepted"),
    ]
    assert set(Conversion.objects.values_list("click_id", flat=True)) == {warm.pk, fresh.pk}


def test_the_dry_run_shows_click_expired_and_records_nothing(manager_admin):
    click = aged_click(10, conversion_window_days=7)

    response = manager_admin.post(
        f"/admin/tracking/test-postback/{click.offer_id}/send/",
        {"target": "conversion", "transaction_id": click.transaction_id, "dry_run": True},
        content_type="application/json",
    )

    assert (response.json()["status_code"], response.json()["reason"]) == (422, "click_expired")
    assert not Conversion.objects.exists()
    assert not PostbackLog.objects.exists()
