"""Migration 0006_record_status on a database that already holds records: every existing
conversion and event record becomes approved, changed at its created_at, with no history;
the hourly totals (PostgreSQL) keep their numbers, now under ``approved``."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from offers.tokens import generate_postback_token, token_digest

BEFORE = [("tracking", "0005_click_transaction_id_one_index")]
AFTER = [("tracking", "0006_record_status")]
WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def migrate(targets):  # noqa: ANN001, ANN201
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_records_migrate_as_approved_at_their_created_at():
    apps = migrate(BEFORE)
    try:
        token = generate_postback_token()
        advertiser = apps.get_model("offers", "Advertiser").objects.create(
            name="Before statuses", postback_token=token, postback_token_digest=token_digest(token)
        )
        offer = apps.get_model("offers", "Offer").objects.create(
            name="Old offer",
            advertiser=advertiser,
            destination_url="https://shop.example.com/",
            revenue_value=Decimal("5.00"),
            payout_value=Decimal("3.00"),
        )
        event = apps.get_model("offers", "Event").objects.create(
            offer=offer,
            name="purchase",
            revenue_type="CPA",
            revenue_value=Decimal("2"),
            payout_type="CPA",
            payout_value=Decimal("1"),
        )
        publisher = apps.get_model("offers", "Publisher").objects.create(name="Old publisher")
        click = apps.get_model("tracking", "Click").objects.create(
            transaction_id="a" * 32, offer=offer, publisher=publisher
        )
        common = {"click": click, "offer": offer, "publisher": publisher, "currency": "USD"}
        conversion = apps.get_model("tracking", "Conversion").objects.create(
            **common, revenue=Decimal("5.00"), payout=Decimal("3.00"), created_at=WHEN
        )
        record = apps.get_model("tracking", "EventRecord").objects.create(
            **common,
            event=event,
            conversion=conversion,
            revenue=Decimal("2.00"),
            payout=Decimal("1.00"),
            created_at=WHEN,
        )
    finally:
        apps = migrate(AFTER)

    Conversion = apps.get_model("tracking", "Conversion")
    EventRecord = apps.get_model("tracking", "EventRecord")
    migrated = Conversion.objects.get(pk=conversion.pk)
    assert (migrated.status, migrated.status_reason, migrated.status_changed_at) == (
        "approved",
        "",
        WHEN,
    )
    migrated_record = EventRecord.objects.get(pk=record.pk)
    assert (migrated_record.status, migrated_record.status_changed_at) == ("approved", WHEN)
    assert migrated_record.status_by_rule is False
    assert not apps.get_model("tracking", "StatusChange").objects.exists()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT event_id, status, sum(count), sum(revenue) FROM tracking_hourlytotal "
                "GROUP BY 1, 2 ORDER BY 1"
            )
            assert cursor.fetchall() == [
                (0, "approved", 1, Decimal("5.00")),
                (event.pk, "approved", 1, Decimal("2.00")),
            ]
