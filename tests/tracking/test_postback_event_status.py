"""Events and their conversion's status through the real /postback endpoint: check 10a
(``conversion_rejected``), events of a pending conversion recorded ``pending``
(``conversion_pending``), and ``record_status`` in every accepted answer; through the
one-statement path and the ordinary one alike."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ConversionFactory, EventFactory, EventRecordFactory
from tracking.models import Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def event_params(conversion, **extra: str) -> dict[str, str]:
    return {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        **extra,
    }


@pytest.fixture
def purchase():
    conversion = ConversionFactory()
    return conversion, EventFactory(offer=conversion.offer, name="purchase", allow_multiple=True)


@pytest.mark.parametrize("by", ["event_id", "event_name"])
def test_an_event_on_a_rejected_conversion_is_refused_with_conversion_rejected(
    client, purchase, by
):
    conversion, event = purchase
    Conversion.objects.update(status="rejected", status_reason="fraud")
    identifier = str(event.pk) if by == "event_id" else event.name

    response = client.get("/postback", event_params(conversion, **{by: identifier}))

    assert response.status_code == 422
    assert response.json()["reason"] == "conversion_rejected"
    assert response.json()["status"] == "rejected"
    assert not EventRecord.objects.exists()
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.event_record_id) == ("conversion_rejected", 422, None)


def test_a_resent_event_on_a_rejected_conversion_is_still_a_duplicate(client):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer)  # single-fire
    EventRecordFactory(conversion=conversion, event=event, status="rejected")
    Conversion.objects.update(status="rejected")

    response = client.get("/postback", event_params(conversion, event_id=str(event.pk)))

    assert (response.status_code, response.json()["reason"]) == (409, "duplicate_event")


def test_an_event_on_a_pending_conversion_is_recorded_pending(client, purchase):
    conversion, event = purchase
    Conversion.objects.update(status="pending", status_reason="checking")

    response = client.get("/postback", event_params(conversion, event_id=str(event.pk)))

    assert response.status_code == 200
    body = response.json()
    assert (body["reason"], body["record_status"], body["record_status_reason"]) == (
        "accepted",
        "pending",
        "conversion_pending",
    )
    record = EventRecord.objects.get()
    assert (record.status, record.status_reason, record.status_by_rule) == (
        "pending",
        "conversion_pending",
        True,
    )
    assert not record.status_changes.exists()  # a record's first status is no history entry


def test_approving_the_pending_conversion_approves_the_event_recorded_pending(
    client, manager_client, purchase
):
    conversion, event = purchase
    Conversion.objects.update(status="pending")
    client.get("/postback", event_params(conversion, event_id=str(event.pk)))

    manager_client.patch(
        f"/api/v1/conversions/{conversion.pk}/", {"status": "approved"}, format="json"
    )

    assert EventRecord.objects.get().status == "approved"


def test_every_accepted_answer_carries_the_record_status(client, purchase):
    conversion, event = purchase
    fresh = ConversionFactory(click__offer=conversion.offer).click

    answers = [
        client.get("/postback", event_params(conversion, event_id=str(event.pk))),
        client.get("/postback", event_params(conversion, event_name="purchase")),
        client.get(
            "/postback",
            {
                "secure": conversion.offer.advertiser.postback_token,
                "transaction_id": fresh.transaction_id,
                "event_id": str(event.pk),
                "offer_id": str(conversion.offer_id),
            },
        ),
    ]

    for response in answers:
        assert response.status_code == 200
        assert (response.json()["record_status"], response.json()["record_status_reason"]) == (
            "approved",
            "",
        )


def test_a_conversion_is_accepted_approved(client):
    from tests.factories import ClickFactory

    click = ClickFactory()
    response = client.get(
        "/postback",
        {"secure": click.offer.advertiser.postback_token, "transaction_id": click.transaction_id},
    )
    assert (response.json()["record_status"], Conversion.objects.get().status) == (
        "approved",
        "approved",
    )


def test_the_event_write_locks_its_conversion(client, purchase):
    """On PostgreSQL the statement that writes an event reads its conversion FOR SHARE; on
    SQLite the write's (IMMEDIATE) transaction reads the status again."""
    conversion, event = purchase
    Conversion.objects.update(status="pending")
    client.get("/postback", event_params(conversion, event_id=str(event.pk)))  # warm the cache

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/postback", event_params(conversion, event_id=str(event.pk)))

    assert response.json()["record_status"] == "pending"
    writes = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
    assert writes
    if connection.vendor == "postgresql":
        assert all("FOR SHARE" in sql for sql in writes), writes


def test_another_adv_subs_record_does_not_make_a_refused_event_a_duplicate(client, purchase):
    """A multiple event with a new adv_sub on a rejected conversion: the duplicate check
    (10) looks for that adv_sub only, so the answer is 10a's."""
    conversion, event = purchase
    EventRecordFactory(conversion=conversion, event=event, adv_sub="o-1")
    Conversion.objects.update(status="rejected")

    response = client.get(
        "/postback", event_params(conversion, event_id=str(event.pk), adv_sub="o-2")
    )
    resent = client.get(
        "/postback", event_params(conversion, event_id=str(event.pk), adv_sub="o-1")
    )

    assert (response.status_code, response.json()["reason"]) == (422, "conversion_rejected")
    assert (resent.status_code, resent.json()["reason"]) == (409, "duplicate_event")


def test_a_cps_event_without_amount_is_told_so_despite_another_adv_subs_record(client):
    from decimal import Decimal

    conversion = ConversionFactory()
    event = EventFactory(
        offer=conversion.offer, allow_multiple=True, revenue_type="CPS", revenue_value=Decimal(10)
    )
    EventRecordFactory(conversion=conversion, event=event, adv_sub="o-1")

    response = client.get(
        "/postback", event_params(conversion, event_id=str(event.pk), adv_sub="o-2")
    )

    assert (response.status_code, response.json()["reason"]) == (422, "amount_required")
