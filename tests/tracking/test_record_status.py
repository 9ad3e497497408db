"""Record status end to end: account managers' PATCH on the API, the status history, and
events following their conversion (docs/postbacks.md "Approving and rejecting")."""

from decimal import Decimal

import pytest

from tests.factories import ConversionFactory, EventFactory, EventRecordFactory
from tracking.models import Conversion, EventRecord, StatusChange

pytestmark = pytest.mark.django_db


def patch(client, record, **data):  # noqa: ANN001, ANN201
    kind = "event-records" if isinstance(record, EventRecord) else "conversions"
    return client.patch(f"/api/v1/{kind}/{record.pk}/", data, format="json")


def status_postback(client, conversion, **extra):  # noqa: ANN001, ANN201
    return client.get(
        "/postback/status",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            **extra,
        },
    )


def statuses(*records) -> list[tuple[str, str]]:
    out = []
    for record in records:
        record.refresh_from_db()
        out.append((record.status, record.status_reason))
    return out


@pytest.fixture
def family():
    """A conversion with events in every situation the cascade tells apart."""
    conversion = ConversionFactory()
    events = [EventFactory(offer=conversion.offer, allow_multiple=True) for _ in range(3)]
    approved = EventRecordFactory(conversion=conversion, event=events[0])
    held = EventRecordFactory(
        conversion=conversion, event=events[1], status="pending", status_reason="cap_reached"
    )
    refused = EventRecordFactory(
        conversion=conversion, event=events[2], status="rejected", status_reason="fraud"
    )
    return conversion, approved, held, refused


def test_a_manager_rejects_a_conversion_through_the_api_with_a_reason(manager_client):
    conversion = ConversionFactory(revenue=Decimal("5.00"))

    response = patch(manager_client, conversion, status="rejected", reason="chargeback")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["status_reason"]) == ("rejected", "chargeback")
    assert body["revenue"] == "5.00"  # a record keeps its money whatever its status
    [entry] = body["status_history"]
    assert entry == {
        "from": "approved",
        "to": "rejected",
        "reason": "chargeback",
        "source": "api",
        "user": StatusChange.objects.get().user.username,
        "at": entry["at"],
    }
    assert Conversion.objects.get().status == "rejected"


def test_analysts_cannot_change_a_status(analyst_client):
    conversion = ConversionFactory()

    response = patch(analyst_client, conversion, status="rejected")

    assert response.status_code == 403
    assert Conversion.objects.get().status == "approved"
    assert not StatusChange.objects.exists()


def test_a_patch_changes_only_the_status_and_its_reason(manager_client):
    conversion = ConversionFactory(revenue=Decimal("5.00"))

    response = patch(manager_client, conversion, status="pending", revenue="99.00", reason="x")

    assert response.status_code == 200
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_reason, conversion.revenue) == (
        "pending",
        "x",
        Decimal("5.00"),
    )


@pytest.mark.parametrize(
    "data",
    [{"status": "held"}, {}, {"status": "Approved"}, {"status": "rejected", "reason": "x" * 256}],
)
def test_a_bad_patch_is_a_400(manager_client, data):
    conversion = ConversionFactory()
    response = manager_client.patch(f"/api/v1/conversions/{conversion.pk}/", data, format="json")
    assert response.status_code == 400
    assert Conversion.objects.get().status == "approved"


def test_a_patch_to_the_same_status_adds_no_history(manager_client):
    conversion = ConversionFactory()
    response = patch(manager_client, conversion, status="approved", reason="fine")
    assert response.status_code == 200
    assert response.json()["status_history"] == []
    assert Conversion.objects.get().status_reason == ""


def test_a_manager_reinstates_a_rejected_conversion(manager_client, client):
    conversion = ConversionFactory()
    status_postback(client, conversion, status="rejected")

    response = patch(manager_client, conversion, status="approved")

    assert response.status_code == 200
    history = response.json()["status_history"]
    assert [(h["from"], h["to"], h["source"]) for h in history] == [
        ("approved", "rejected", "postback"),
        ("rejected", "approved", "api"),
    ]
    assert history[0]["user"] is None


def test_rejecting_a_conversion_rejects_its_approved_and_pending_events(client, family):
    conversion, approved, held, refused = family

    response = status_postback(client, conversion, status="rejected", reason="refund")

    assert response.json()["reason"] == "updated"
    assert statuses(approved, held, refused) == [
        ("rejected", "conversion_rejected"),
        ("rejected", "conversion_rejected"),
        ("rejected", "fraud"),
    ]
    assert approved.status_by_rule and held.status_by_rule and not refused.status_by_rule
    rule_entries = StatusChange.objects.filter(source="rule")
    assert {(e.event_record_id, e.from_status, e.to_status) for e in rule_entries} == {
        (approved.pk, "approved", "rejected"),
        (held.pk, "pending", "rejected"),
    }
    assert not StatusChange.objects.filter(event_record=refused).exists()


def test_approving_the_conversion_again_approves_only_what_the_rule_set(manager_client, family):
    conversion, approved, held, refused = family
    patch(manager_client, conversion, status="rejected")

    response = patch(manager_client, conversion, status="approved")

    assert response.status_code == 200
    assert [s for s, _ in statuses(approved, held, refused)] == ["approved", "approved", "rejected"]
    assert approved.status_reason == "conversion_approved"
    history = manager_client.get(f"/api/v1/event-records/{held.pk}/").json()["status_history"]
    assert [(h["from"], h["to"], h["source"], h["reason"]) for h in history] == [
        ("pending", "rejected", "rule", "conversion_rejected"),
        ("rejected", "approved", "rule", "conversion_approved"),
    ]


def test_a_pending_conversion_puts_its_approved_and_rule_set_events_on_pending(
    manager_client, family
):
    conversion, approved, held, refused = family
    patch(manager_client, conversion, status="rejected")  # approved and held: by the rule

    patch(manager_client, conversion, status="pending")

    assert statuses(approved, held, refused) == [
        ("pending", "conversion_pending"),
        ("pending", "conversion_pending"),
        ("rejected", "fraud"),
    ]


def test_setting_a_conversion_pending_leaves_a_held_event_alone(manager_client, family):
    conversion, approved, held, refused = family

    patch(manager_client, conversion, status="pending")

    assert statuses(approved, held, refused) == [
        ("pending", "conversion_pending"),
        ("pending", "cap_reached"),
        ("rejected", "fraud"),
    ]


def test_an_advertisers_reason_text_never_passes_for_the_rule(client, manager_client):
    conversion = ConversionFactory()
    event = EventRecordFactory(conversion=conversion)
    status_postback(
        client,
        conversion,
        status="rejected",
        event_id=str(event.event_id),
        reason="conversion_rejected",
    )
    patch(manager_client, conversion, status="rejected")

    patch(manager_client, conversion, status="approved")

    assert statuses(event) == [("rejected", "conversion_rejected")]
    assert not event.status_by_rule


def test_an_event_cannot_be_approved_or_pending_while_its_conversion_is_rejected(
    manager_client, family
):
    conversion, approved, held, refused = family
    patch(manager_client, conversion, status="rejected")

    for target in ("approved", "pending"):
        response = patch(manager_client, refused, status=target)
        assert response.status_code == 409
        assert response.json()["reason"] == "invalid_transition"
    assert statuses(refused) == [("rejected", "fraud")]


def test_a_manager_changes_one_event_record_without_touching_its_conversion(manager_client):
    event = EventRecordFactory()

    response = patch(manager_client, event, status="pending", reason="checking")

    assert response.status_code == 200
    assert response.json()["status_history"][0]["source"] == "api"
    assert Conversion.objects.get().status == "approved"
    event.refresh_from_db()
    assert not event.status_by_rule


def test_record_lists_show_every_status_and_filter_by_status(analyst_client):
    approved = ConversionFactory()
    pending = ConversionFactory(status="pending")
    rejected = ConversionFactory(status="rejected")
    url = "/api/v1/conversions/"

    def ids(params):  # noqa: ANN001, ANN202
        response = analyst_client.get(url, params)
        assert response.status_code == 200, response.json()
        return sorted(row["id"] for row in response.json()["results"])

    assert ids({}) == sorted([approved.pk, pending.pk, rejected.pk])
    assert ids({"status": "pending"}) == [pending.pk]
    assert ids({"status": "pending,rejected"}) == sorted([pending.pk, rejected.pk])
    assert analyst_client.get(url, {"status": "held"}).status_code == 400
    event = EventRecordFactory(status="rejected")
    body = analyst_client.get("/api/v1/event-records/", {"status": "rejected"}).json()
    assert [row["id"] for row in body["results"]] == [event.pk]


def test_the_schema_documents_the_status_patch_and_history(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path, item in [
        ("/api/v1/conversions/{id}/", "Conversion"),
        ("/api/v1/event-records/{id}/", "EventRecord"),
    ]:
        patch_op = schema["paths"][path]["patch"]
        body = patch_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.endswith("/StatusUpdate") or body.endswith("/PatchedStatusUpdate")
        assert patch_op["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith(f"/{item}")
        assert {"403", "409"} <= set(patch_op["responses"])
        assert "put" not in schema["paths"][path]
    conversion = schema["components"]["schemas"]["Conversion"]["properties"]
    assert {"status", "status_reason", "status_changed_at", "status_history"} <= set(conversion)
    entry = schema["components"]["schemas"]["StatusChange"]["properties"]
    assert set(entry) == {"from", "to", "reason", "source", "user", "at"}


def test_the_demo_data_shows_every_status_with_its_history():
    from django.core.management import call_command

    call_command("demo_data", clicks=600, days=5, stdout=open("/dev/null", "w"))  # noqa: SIM115

    statuses = set(Conversion.objects.values_list("status", flat=True))
    assert statuses == {"approved", "pending", "rejected"}
    assert StatusChange.objects.filter(source="postback", to_status="rejected").exists()
    assert StatusChange.objects.filter(source="admin", to_status="pending").exists()
    for conversion in Conversion.objects.filter(status="rejected"):
        assert not conversion.event_records.exclude(status="rejected").exists()
