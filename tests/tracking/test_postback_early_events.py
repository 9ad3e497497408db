"""Early events (docs/postbacks.md "Early events") end to end over HTTP: an event that comes
before its click's conversion is kept (202 waiting_for_conversion) and judged in arrival
order when the conversion is recorded; closed as no_conversion when its time passes, or
unknown_event when its event is deleted."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from offers.models import Event, OfferCap
from tests.factories import ClickFactory, ConversionFactory, EventFactory, OfferFactory
from tests.markers import requires_postgresql
from tracking.models import Conversion, EventRecord, KeptPostback, PostbackLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer():
    offer = OfferFactory()
    EventFactory(offer=offer, name="install", wait_for_conversion_minutes=60)
    EventFactory(offer=offer, name="purchase", allow_multiple=True, wait_for_conversion_minutes=60)
    EventFactory(offer=offer, name="no_wait")
    return offer


def send(client, click, **extra: str):  # noqa: ANN001, ANN201
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    return client.get("/postback", params | extra)


def test_an_early_event_is_kept_and_answered_waiting(client, offer):
    click = ClickFactory(offer=offer)

    response = send(client, click, event_name="install")

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["reason"], body["event_name"]) == (
        "waiting",
        "waiting_for_conversion",
        "install",
    )
    kept = KeptPostback.objects.get()
    assert kept.click == click and "secure" not in kept.params
    assert click.offer.advertiser.postback_token not in str(kept.params)
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.decided_at) == ("waiting_for_conversion", 202, None)
    assert not EventRecord.objects.exists()


def test_an_event_that_does_not_wait_is_refused_as_before(client, offer):
    response = send(client, ClickFactory(offer=offer), event_name="no_wait")

    assert (response.status_code, response.json()["reason"]) == (422, "no_conversion")
    assert not KeptPostback.objects.exists()


def test_event_event_conversion_records_both_once_in_order_and_refuses_duplicates(client, offer):
    click = ClickFactory(offer=offer)
    answers = [
        send(client, click, event_name="install"),
        send(client, click, event_name="purchase", adv_sub="order-1", amount="9.50"),
        send(client, click, event_name="install"),  # a resend: a duplicate
        send(client, click, event_name="purchase", adv_sub="order-1"),  # the same order again
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 202]

    conversion = send(client, click)

    assert conversion.status_code == 200
    records = list(EventRecord.objects.order_by("id").values_list("event__name", "adv_sub"))
    assert records == [("install", ""), ("purchase", "order-1")]
    assert all(r.conversion_id == Conversion.objects.get().pk for r in EventRecord.objects.all())
    logs = list(
        PostbackLog.objects.filter(reason="waiting_for_conversion")
        .order_by("id")
        .values_list("final_status_code", "final_reason")
    )
    assert logs == [
        (200, "accepted"),
        (200, "accepted"),
        (409, "duplicate_event"),
        (409, "duplicate_event"),
    ]
    first = PostbackLog.objects.filter(reason="waiting_for_conversion").order_by("id").first()
    assert first.status_code == 202 and first.decided_at is not None
    assert first.event_record_id == EventRecord.objects.order_by("id").first().pk
    assert not KeptPostback.objects.exists()
    # Judged once: another conversion attempt or a sweep changes nothing.
    send(client, click)
    call_command("kept_postbacks")
    assert EventRecord.objects.count() == 2


def test_a_kept_event_is_judged_by_the_event_as_defined_when_the_conversion_comes(client, offer):
    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")
    Event.objects.filter(offer=offer, name="install").update(payout_value=Decimal("7.00"))

    send(client, click)

    assert EventRecord.objects.get().payout == Decimal("7.00")


def test_a_kept_event_of_a_conversion_held_pending_is_recorded_pending(client, offer):
    OfferCap.objects.create(offer=offer, metric="conversions", period="day", limit=1, mode="soft")
    ConversionFactory(click__offer=offer)  # fills the cap
    from offers.caps import local_day, period_start  # noqa: PLC0415
    from offers.models import CapCounter  # noqa: PLC0415

    cap = OfferCap.objects.get()
    CapCounter.objects.create(
        cap=cap, period_start=period_start("day", local_day(timezone.now())), used=1
    )
    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")

    conversion = send(client, click).json()

    assert conversion["record_status"] == "pending"
    record = EventRecord.objects.get()
    assert (record.status, record.status_reason) == ("pending", "conversion_pending")


def test_kept_events_are_closed_as_no_conversion_when_their_time_passes(client, offer):
    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")
    KeptPostback.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    call_command("kept_postbacks")

    log = PostbackLog.objects.get()
    assert (log.status_code, log.reason) == (202, "waiting_for_conversion")
    assert (log.final_status_code, log.final_reason) == (422, "no_conversion")
    assert not KeptPostback.objects.exists()
    send(client, click)  # the conversion comes too late for it
    assert not EventRecord.objects.exists()


def test_a_kept_event_whose_event_is_deleted_is_closed_as_unknown_event(client, offer):
    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")
    Event.objects.filter(offer=offer, name="install").delete()

    call_command("kept_postbacks")

    log = PostbackLog.objects.get()
    assert (log.final_status_code, log.final_reason) == (404, "unknown_event")


def test_the_sweep_judges_a_kept_event_whose_conversion_was_recorded_meanwhile(client, offer):
    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")
    ConversionFactory(click=click)  # recorded by a path that did not judge

    call_command("kept_postbacks")

    assert EventRecord.objects.get().event.name == "install"
    assert PostbackLog.objects.get(reason="waiting_for_conversion").final_reason == "accepted"


def test_an_early_cps_event_without_amount_is_refused_at_once(client, offer):
    EventFactory(
        offer=offer,
        name="sale",
        revenue_type="CPS",
        revenue_value=10,
        wait_for_conversion_minutes=5,
    )

    response = send(client, ClickFactory(offer=offer), event_name="sale")

    assert (response.status_code, response.json()["reason"]) == (422, "amount_required")
    assert not KeptPostback.objects.exists()


def test_the_log_shows_the_whole_story_in_the_admin_and_the_api(client, offer, manager_client):
    from tests.conftest import admin_client_for  # noqa: PLC0415
    from tests.factories import account_manager  # noqa: PLC0415

    click = ClickFactory(offer=offer)
    send(client, click, event_name="install")
    send(client, click)
    log = PostbackLog.objects.get(reason="waiting_for_conversion")

    page = admin_client_for(account_manager()).get("/admin/tracking/postbacklog/")
    item = manager_client.get(f"/api/v1/postbacks/?transaction_id={click.transaction_id}")

    assert "waiting_for_conversion" in page.content.decode()
    assert "→" in page.content.decode()
    row = next(r for r in item.json()["results"] if r["id"] == log.pk)
    assert (row["status_code"], row["final_status_code"], row["final_reason"]) == (
        202,
        200,
        "accepted",
    )
    assert row["decided_at"] is not None


def test_an_events_wait_is_set_on_its_page_and_in_the_api(offer, manager_client):
    from tests.conftest import admin_client_for  # noqa: PLC0415
    from tests.factories import account_manager  # noqa: PLC0415

    event = Event.objects.get(offer=offer, name="no_wait")
    url = f"/api/v1/offers/{offer.pk}/events/{event.pk}/"

    ok = manager_client.patch(url, {"wait_for_conversion_minutes": 1440}, format="json")
    too_long = manager_client.patch(url, {"wait_for_conversion_minutes": 1441}, format="json")
    page = admin_client_for(account_manager()).get(f"/admin/offers/event/{event.pk}/change/")

    assert ok.status_code == 200 and ok.json()["wait_for_conversion_minutes"] == 1440
    assert too_long.status_code == 400
    assert 'name="wait_for_conversion_minutes"' in page.content.decode()


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_kept_events_are_judged_once_when_judges_race(offer):
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415
    from threading import Barrier  # noqa: PLC0415

    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415

    from tracking.kept import judge_click  # noqa: PLC0415

    click = ClickFactory(offer=offer)
    client = Client()
    for name in ("install", "purchase"):
        assert send(client, click, event_name=name, adv_sub="a").status_code == 202
    ConversionFactory(click=click)  # recorded without judging: the judges below race
    barrier = Barrier(4)

    def judge() -> int:
        try:
            barrier.wait()
            return len(judge_click(click.pk))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        judged = sorted(pool.map(lambda _: judge(), range(4)))

    assert judged == [0, 0, 0, 2]
    assert EventRecord.objects.count() == 2
    assert not KeptPostback.objects.exists()


def test_the_dry_run_shows_an_early_event_waiting_and_keeps_nothing(offer, manager_admin):
    click = ClickFactory(offer=offer)
    event = Event.objects.get(offer=offer, name="install")

    response = manager_admin.post(
        f"/admin/tracking/test-postback/{offer.pk}/send/",
        {"target": str(event.pk), "transaction_id": click.transaction_id, "dry_run": True},
        content_type="application/json",
    )

    assert (response.json()["status_code"], response.json()["body"]["status"]) == (202, "waiting")
    assert not KeptPostback.objects.exists()
