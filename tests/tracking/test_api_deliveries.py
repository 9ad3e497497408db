"""``/api/v1/publishers/{id}/postbacks/`` and ``/api/v1/deliveries/`` through the real API
with token authentication and the roles' permissions."""

import pytest

from offers.models import PublisherPostback
from tests.factories import ConversionFactory, EventFactory, OfferFactory, PublisherFactory
from tracking.deliveries import deliveries_create
from tracking.models import Delivery

pytestmark = pytest.mark.django_db

URL = "https://pub.example.com/pb?click={transaction_id}&payout={payout}&d={delivery_id}"


def test_an_account_manager_creates_reads_edits_and_deletes_a_publisher_postback(
    manager_client,
):
    publisher, offer = PublisherFactory(), OfferFactory()
    base = f"/api/v1/publishers/{publisher.pk}/postbacks/"

    created = manager_client.post(
        base, {"offer": offer.pk, "trigger": "conversion", "url": URL}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert {k: body[k] for k in ("offer", "trigger", "event", "url", "enabled")} == {
        "offer": offer.pk,
        "trigger": "conversion",
        "event": None,
        "url": URL,
        "enabled": True,
    }
    assert body["disabled_reason"] == ""
    item = f"{base}{body['id']}/"

    listed = manager_client.get(base).json()
    assert [p["id"] for p in listed["results"]] == [body["id"]]
    patched = manager_client.patch(item, {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert manager_client.delete(item).status_code == 204
    assert not PublisherPostback.objects.exists()


def test_an_event_postback_names_its_event_and_gets_the_events_offer(manager_client):
    publisher, event = PublisherFactory(), EventFactory()

    created = manager_client.post(
        f"/api/v1/publishers/{publisher.pk}/postbacks/",
        {"trigger": "event", "event": event.pk, "url": URL},
        format="json",
    )

    assert created.status_code == 201, created.json()
    assert (created.json()["event"], created.json()["offer"]) == (event.pk, event.offer_id)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"trigger": "conversion", "url": "https://p.example/pb?r={revenue}"}, "url"),
        ({"trigger": "conversion", "url": "https://{aff_sub}.example/pb"}, "url"),
        ({"trigger": "conversion", "url": "https://p.example:{aff_sub}/pb"}, "url"),
        ({"trigger": "conversion", "url": "ftp://p.example/pb"}, "url"),
        ({"trigger": "conversion", "url": ""}, "url"),
        ({"trigger": "sale", "url": URL}, "trigger"),
        ({"trigger": "conversion", "url": URL, "offer": 999999}, "offer"),
    ],
)
def test_a_postback_that_cannot_be_sent_as_written_is_refused_with_400(
    manager_client, payload, field
):
    publisher = PublisherFactory()

    answer = manager_client.post(
        f"/api/v1/publishers/{publisher.pk}/postbacks/", payload, format="json"
    )

    assert answer.status_code == 400
    assert field in answer.json()
    assert not PublisherPostback.objects.exists()


def test_an_event_on_a_conversion_postback_or_of_another_offer_is_refused(manager_client):
    publisher, event, other_offer = PublisherFactory(), EventFactory(), OfferFactory()
    base = f"/api/v1/publishers/{publisher.pk}/postbacks/"

    wrong_trigger = manager_client.post(
        base, {"trigger": "conversion", "event": event.pk, "url": URL}, format="json"
    )
    wrong_offer = manager_client.post(
        base,
        {"trigger": "event", "event": event.pk, "offer": other_offer.pk, "url": URL},
        format="json",
    )

    assert (wrong_trigger.status_code, wrong_offer.status_code) == (400, 400)
    assert "event" in wrong_trigger.json() and "event" in wrong_offer.json()


def test_analysts_read_publisher_postbacks_but_cannot_write_them(analyst_client):
    publisher = PublisherFactory()
    PublisherPostback.objects.create(publisher=publisher, trigger="conversion", url=URL)
    base = f"/api/v1/publishers/{publisher.pk}/postbacks/"

    assert analyst_client.get(base).status_code == 200
    answer = analyst_client.post(base, {"trigger": "conversion", "url": URL}, format="json")
    assert answer.status_code == 403


def test_an_unknown_publisher_answers_404(manager_client):
    assert manager_client.get("/api/v1/publishers/999999/postbacks/").status_code == 404


def delivery_with_secret() -> Delivery:
    conversion = ConversionFactory()
    PublisherPostback.objects.create(
        publisher=conversion.publisher,
        trigger="conversion",
        url="https://p.example/pb?token=s3cr3t-value&click={transaction_id}&d={delivery_id}",
    )
    (delivery,) = deliveries_create(record=conversion)
    return delivery


def test_the_delivery_log_lists_deliveries_with_masked_urls_and_filters(analyst_client):
    delivery = delivery_with_secret()
    other = delivery_with_secret()

    listed = analyst_client.get("/api/v1/deliveries/", {"publisher": delivery.publisher_id})

    assert listed.status_code == 200
    (item,) = listed.json()["results"]
    assert item["id"] == delivery.pk
    assert item["url"] == (
        f"https://p.example/pb?token=***&click={delivery.transaction_id}&d={delivery.pk}"
    )
    assert "s3cr3t" not in listed.content.decode()
    assert (item["trigger"], item["type"], item["record_id"], item["outcome"]) == (
        "conversion",
        "conversion",
        delivery.conversion_id,
        "queued",
    )
    assert item["attempts"] == [] and item["next_attempt_at"]
    by_tid = analyst_client.get("/api/v1/deliveries/", {"transaction_id": other.transaction_id})
    assert [d["id"] for d in by_tid.json()["results"]] == [other.pk]
    by_outcome = analyst_client.get("/api/v1/deliveries/", {"outcome": "failed"})
    assert by_outcome.json()["count"] == 0
    bad = analyst_client.get("/api/v1/deliveries/", {"outcome": "lost"})
    assert bad.status_code == 400


def test_resend_requeues_the_same_delivery_for_account_managers_only(
    manager_client, analyst_client
):
    delivery = delivery_with_secret()
    resend = f"/api/v1/deliveries/{delivery.pk}/resend/"

    # Still queued: the worker will send it; resending could send it twice at once.
    assert manager_client.post(resend).status_code == 409
    Delivery.objects.filter(pk=delivery.pk).update(outcome="failed", next_attempt_at=None)
    assert analyst_client.post(resend).status_code == 403

    answer = manager_client.post(resend)

    assert answer.status_code == 200
    assert (answer.json()["id"], answer.json()["outcome"]) == (delivery.pk, "queued")
    assert Delivery.objects.get().outcome == "queued"
