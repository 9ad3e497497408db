"""``/postback/status`` through the real endpoint: every row of the status check table
(docs/postbacks.md "Approving and rejecting"), the shared checks 1–6, the answer's fields
and the log (type ``status``)."""

import pytest

from tests.factories import (
    AdvertiserFactory,
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
)
from tracking.models import Conversion, EventRecord, PostbackLog, StatusChange

pytestmark = pytest.mark.django_db


def status_params(click, **extra: str) -> dict[str, str]:
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
        **extra,
    }


def only_log() -> PostbackLog:
    log = PostbackLog.objects.get()
    assert log.type == "status"
    return log


@pytest.fixture
def conversion():
    return ConversionFactory()


def test_an_advertiser_rejects_a_conversion_with_a_reason(client, conversion):
    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", reason="refunded order"),
    )

    assert response.status_code == 200
    assert response.json() == {
        "status": "accepted",
        "reason": "updated",
        "type": "conversion",
        "id": conversion.pk,
        "transaction_id": conversion.click.transaction_id,
        "record_status": "rejected",
        "record_status_reason": "refunded order",
        "previous_record_status": "approved",
    }
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_reason) == ("rejected", "refunded order")
    assert conversion.status_changed_at > conversion.created_at
    change = StatusChange.objects.get()
    assert (change.conversion, change.from_status, change.to_status) == (
        conversion,
        "approved",
        "rejected",
    )
    assert (change.reason, change.source, change.user) == ("refunded order", "postback", None)
    log = only_log()
    assert (log.status_code, log.reason, log.conversion_id) == (200, "updated", conversion.pk)
    assert log.params["secure"] != conversion.offer.advertiser.postback_token


def test_a_post_with_a_form_body_works_like_a_get(client, conversion):
    response = client.post("/postback/status", status_params(conversion.click, status="rejected"))

    assert response.status_code == 200
    assert response.json()["reason"] == "updated"
    assert only_log().method == "POST"


def test_the_trailing_slash_form_is_served_too(client, conversion):
    response = client.get("/postback/status/", status_params(conversion.click, status="rejected"))
    assert response.json()["reason"] == "updated"


def test_the_same_status_again_is_unchanged_and_changes_nothing_not_even_the_reason(
    client, conversion
):
    client.get("/postback/status", status_params(conversion.click, status="rejected", reason="a"))
    changed_at = Conversion.objects.get().status_changed_at

    response = client.get(
        "/postback/status", status_params(conversion.click, status="rejected", reason="b")
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reason"]) == ("accepted", "unchanged")
    assert (body["record_status"], body["record_status_reason"]) == ("rejected", "a")
    assert body["previous_record_status"] == "rejected"
    conversion.refresh_from_db()
    assert (conversion.status_reason, conversion.status_changed_at) == ("a", changed_at)
    assert StatusChange.objects.count() == 1
    assert PostbackLog.objects.filter(reason="unchanged", conversion=conversion).count() == 1


def test_approving_an_approved_record_is_unchanged_with_an_empty_reason(client, conversion):
    response = client.get("/postback/status", status_params(conversion.click, status="approved"))

    assert response.status_code == 200
    assert response.json()["reason"] == "unchanged"
    assert response.json()["record_status_reason"] == ""
    assert not StatusChange.objects.exists()


def test_an_advertiser_cannot_reinstate_a_rejected_record(client, conversion):
    client.get("/postback/status", status_params(conversion.click, status="rejected"))

    response = client.get("/postback/status", status_params(conversion.click, status="approved"))

    assert response.status_code == 409
    body = response.json()
    assert (body["status"], body["reason"]) == ("rejected", "invalid_transition")
    assert body["message"]
    assert (body["type"], body["id"]) == ("conversion", conversion.pk)
    assert (body["record_status"], body["previous_record_status"]) == ("rejected", "rejected")
    assert Conversion.objects.get().status == "rejected"
    assert StatusChange.objects.count() == 1
    log = PostbackLog.objects.get(reason="invalid_transition")
    assert (log.status_code, log.conversion_id, log.type) == (409, conversion.pk, "status")


def test_an_advertiser_approves_a_pending_record(client):
    conversion = ConversionFactory(status="pending", status_reason="manager hold")

    response = client.get("/postback/status", status_params(conversion.click, status="approved"))

    assert response.status_code == 200
    body = response.json()
    assert (body["reason"], body["record_status"], body["previous_record_status"]) == (
        "updated",
        "approved",
        "pending",
    )
    assert body["record_status_reason"] == ""


def test_an_advertiser_cannot_approve_a_record_held_by_a_cap(client):
    conversion = ConversionFactory(status="pending", status_reason="cap_reached")

    response = client.get("/postback/status", status_params(conversion.click, status="approved"))

    assert response.status_code == 409
    assert response.json()["reason"] == "invalid_transition"
    assert Conversion.objects.get().status == "pending"

    rejected = client.get("/postback/status", status_params(conversion.click, status="rejected"))
    assert rejected.json()["reason"] == "updated"


@pytest.mark.parametrize(
    ("params", "status_code", "reason"),
    [
        ({"status": ""}, 400, "missing_parameter"),
        ({"status": None}, 400, "missing_parameter"),
        ({"status": "pending"}, 400, "invalid_parameter"),
        ({"status": "Approved"}, 400, "invalid_parameter"),
        ({"status": "approve"}, 400, "invalid_parameter"),
        ({"status": "rejected", "reason": "x" * 256}, 400, "invalid_parameter"),
        ({"status": "rejected", "reason": "bad\x00byte"}, 400, "invalid_parameter"),
        ({"status": "rejected", "record_id": "-1"}, 400, "invalid_parameter"),
        ({"status": "rejected", "record_id": "1.5"}, 400, "invalid_parameter"),
        ({"status": "rejected", "event_id": "abc"}, 400, "invalid_parameter"),
        ({"status": "rejected", "secure": "not-a-token"}, 403, "invalid_secure"),
        ({"status": "rejected", "transaction_id": "x" * 32}, 404, "unknown_transaction"),
        ({"status": "rejected", "offer_id": "999999"}, 422, "offer_mismatch"),
        ({"status": "rejected", "transaction_id": ""}, 400, "missing_parameter"),
    ],
)
def test_parsing_and_checks_one_to_six_are_the_postbacks(
    client, conversion, params, status_code, reason
):
    sent = status_params(conversion.click)
    for name, value in params.items():
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value

    response = client.get("/postback/status", sent)

    assert response.status_code == status_code
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == reason
    assert Conversion.objects.get().status == "approved"
    log = only_log()
    assert (log.status_code, log.reason) == (status_code, reason)


def test_another_advertisers_token_is_refused(client, conversion):
    other = AdvertiserFactory()
    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", secure=other.postback_token),
    )
    assert (response.status_code, response.json()["reason"]) == (403, "invalid_secure")
    assert Conversion.objects.get().status == "approved"


def test_a_click_without_a_conversion_is_an_unknown_record(client):
    click = ClickFactory()

    response = client.get("/postback/status", status_params(click, status="rejected"))

    assert (response.status_code, response.json()["reason"]) == (404, "unknown_record")
    assert "record_status" not in response.json()
    assert only_log().click_id == click.pk


def test_an_unknown_event_and_a_mismatch_are_told(client, conversion):
    event = EventFactory(offer=conversion.offer, name="purchase")
    other = EventFactory(offer=conversion.offer, name="trial")

    unknown = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", event_name="Purchase"),
    )
    mismatch = client.get(
        "/postback/status",
        status_params(
            conversion.click, status="rejected", event_id=str(event.pk), event_name=other.name
        ),
    )

    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_event")
    assert (mismatch.status_code, mismatch.json()["reason"]) == (422, "event_mismatch")


def test_an_event_without_a_record_for_the_click_is_an_unknown_record(client, conversion):
    event = EventFactory(offer=conversion.offer)

    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", event_id=str(event.pk)),
    )

    assert (response.status_code, response.json()["reason"]) == (404, "unknown_record")
    assert only_log().event_id == event.pk


def test_an_event_record_is_targeted_by_event_id_or_name(client, conversion):
    record = EventRecordFactory(conversion=conversion, event__name="purchase")

    by_name = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", event_name="purchase"),
    )

    assert by_name.status_code == 200
    assert by_name.json() | {"transaction_id": None} == {
        "status": "accepted",
        "reason": "updated",
        "type": "event",
        "id": record.pk,
        "transaction_id": None,
        "record_status": "rejected",
        "record_status_reason": "",
        "previous_record_status": "approved",
    }
    record.refresh_from_db()
    assert record.status == "rejected"
    assert not record.status_by_rule
    assert Conversion.objects.get().status == "approved"  # the conversion does not follow
    log = only_log()
    assert (log.event_record_id, log.conversion_id, log.event_id) == (
        record.pk,
        None,
        record.event_id,
    )


def test_several_records_of_an_event_need_an_adv_sub_or_a_record_id(client, conversion):
    event = EventFactory(offer=conversion.offer, allow_multiple=True)
    first = EventRecordFactory(conversion=conversion, event=event, adv_sub="order-1")
    second = EventRecordFactory(conversion=conversion, event=event, adv_sub="order-2")
    params = status_params(conversion.click, status="rejected", event_id=str(event.pk))

    ambiguous = client.get("/postback/status", params)
    by_adv_sub = client.get("/postback/status", params | {"adv_sub": "order-2"})
    unknown_adv_sub = client.get("/postback/status", params | {"adv_sub": "order-3"})
    by_record_id = client.get("/postback/status", params | {"record_id": str(first.pk)})
    foreign_record_id = client.get(
        "/postback/status", params | {"record_id": str(EventRecordFactory().pk)}
    )

    assert (ambiguous.status_code, ambiguous.json()["reason"]) == (409, "ambiguous_record")
    assert "record_status" not in ambiguous.json()
    assert by_adv_sub.json()["id"] == second.pk
    assert (unknown_adv_sub.status_code, unknown_adv_sub.json()["reason"]) == (
        404,
        "unknown_record",
    )
    assert (by_record_id.json()["reason"], by_record_id.json()["id"]) == ("updated", first.pk)
    assert (foreign_record_id.status_code, foreign_record_id.json()["reason"]) == (
        404,
        "unknown_record",
    )
    assert set(EventRecord.objects.filter(event=event).values_list("status", flat=True)) == {
        "rejected"
    }


def test_a_record_id_alone_names_an_event_record_of_the_click(client, conversion):
    record = EventRecordFactory(conversion=conversion)

    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", record_id=str(record.pk)),
    )

    assert (response.json()["type"], response.json()["id"]) == ("event", record.pk)


def test_an_event_of_a_rejected_conversion_cannot_be_approved(client, conversion):
    record = EventRecordFactory(conversion=conversion, status="pending")
    Conversion.objects.filter(pk=conversion.pk).update(status="rejected")

    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="approved", event_id=str(record.event_id)),
    )

    assert (response.status_code, response.json()["reason"]) == (409, "invalid_transition")
    assert EventRecord.objects.get().status == "pending"


def test_other_parameters_are_kept_in_the_log_and_not_judged(client, conversion):
    response = client.get(
        "/postback/status",
        status_params(conversion.click, status="rejected", partner_field="anything"),
    )
    assert response.json()["reason"] == "updated"
    assert only_log().params["partner_field"] == "anything"


def test_a_put_is_refused_in_json(client, conversion):
    response = client.put("/postback/status")
    assert response.status_code == 405
    assert response.json()["reason"] == "method_not_allowed"


def test_an_offer_of_another_advertiser_and_a_paused_offer_still_take_status(client):
    offer = OfferFactory(status="paused")
    conversion = ConversionFactory(click__offer=offer)
    response = client.get("/postback/status", status_params(conversion.click, status="rejected"))
    assert response.json()["reason"] == "updated"
