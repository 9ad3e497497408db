"""Migration 0012 on a database with deliveries in it (PostgreSQL): each delivery and its
attempts learn the month of the record they report and land in that month's partition,
IDs go on, "once per postback and record" still holds, and it migrates back."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from offers.models import PublisherPostback
from tests.factories import ConversionFactory, EventRecordFactory, PublisherFactory
from tests.markers import requires_postgresql
from tests.migrations import latest, migrate
from tracking import partitions
from tracking.models import Delivery, DeliveryAttempt

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgresql]

TARGET = ("tracking", "0012_delivery_partitions")
PREVIOUS = ("tracking", "0011_delivery_partial_indexes")
TABLES = ("tracking_delivery", "tracking_deliveryattempt")


def placed(table: str) -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, tableoid::regclass::text FROM {table}")  # noqa: S608
        return dict(cursor.fetchall())


def relkind(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


def primary_key(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'p'",
            [table],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def before_0012():
    """The database as it was before 0012 (the tables the factories write are the same
    there); brought back to the latest state afterwards."""
    executor = migrate(PREVIOUS)
    yield executor.loader.project_state([PREVIOUS]).apps
    migrate(*latest())


def test_deliveries_and_attempts_move_into_their_records_months(before_0012):
    old_delivery = before_0012.get_model("tracking", "Delivery")
    old_attempt = before_0012.get_model("tracking", "DeliveryAttempt")
    publisher = PublisherFactory()
    postbacks = {
        trigger: PublisherPostback.objects.create(
            publisher=publisher, trigger=trigger, url="http://publisher.example/pb"
        )
        for trigger in ("conversion", "event")
    }
    now = timezone.now()
    months = [
        datetime(2025, 10, 15, 8, tzinfo=UTC),
        datetime(2025, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 12, 1, tzinfo=UTC),
        now,
    ]
    made = {}
    for moment in months:
        conversion = ConversionFactory(click__publisher=publisher, created_at=moment)
        record = EventRecordFactory(conversion=conversion, created_at=moment)
        for reported in (conversion, record):
            is_event = reported is record
            delivery = old_delivery.objects.create(
                postback_id=postbacks["event" if is_event else "conversion"].pk,
                publisher_id=publisher.pk,
                offer_id=conversion.offer_id,
                trigger="event" if is_event else "conversion",
                record_type="event" if is_event else "conversion",
                conversion_id=None if is_event else conversion.pk,
                event_record_id=record.pk if is_event else None,
                transaction_id=conversion.click.transaction_id,
                url="http://publisher.example/pb",
                outcome="delivered",
                created_at=now,  # sent now: the record's month, not this, decides
            )
            attempt = old_attempt.objects.create(
                delivery_id=delivery.pk, at=now, url=delivery.url, status_code=200
            )
            made[delivery.pk] = (moment, attempt.pk)

    migrate(TARGET)

    for table in TABLES:
        assert relkind(table) == "p"
        assert primary_key(table) == "PRIMARY KEY (id, record_created_at)"
    deliveries, attempts = placed("tracking_delivery"), placed("tracking_deliveryattempt")
    for delivery_id, (moment, attempt_id) in made.items():
        month = partitions.month_start(moment)
        assert deliveries[delivery_id] == partitions.partition_name("tracking_delivery", month)
        assert attempts[attempt_id] == partitions.partition_name("tracking_deliveryattempt", month)
        assert Delivery.objects.get(pk=delivery_id).record_created_at == moment
        assert DeliveryAttempt.objects.get(pk=attempt_id).record_created_at == moment
    # The months from the oldest record's to three ahead, and the DEFAULT partition.
    current = partitions.month_start(now)
    for table in TABLES:
        made_months = [p.start for p in partitions.partitions(table) if not p.is_default]
        assert made_months == partitions.months_between(
            datetime(2025, 10, 1, tzinfo=UTC), partitions.add_months(current, 3)
        )

    # IDs go on from the old table's; a record's delivery is still written once per postback.
    conversion = ConversionFactory(click__publisher=publisher)

    def deliver() -> Delivery:
        return Delivery.objects.create(
            postback=postbacks["conversion"],
            publisher=publisher,
            offer_id=conversion.offer_id,
            trigger="conversion",
            record_type="conversion",
            conversion=conversion,
            transaction_id=conversion.click.transaction_id,
            url="http://publisher.example/pb",
            record_created_at=conversion.created_at,
        )

    assert deliver().pk > max(made)
    with pytest.raises(IntegrityError), transaction.atomic():
        deliver()


def test_it_migrates_back_to_plain_tables_with_every_row(before_0012):
    old_delivery = before_0012.get_model("tracking", "Delivery")
    publisher = PublisherFactory()
    postback = PublisherPostback.objects.create(
        publisher=publisher, trigger="conversion", url="http://publisher.example/pb"
    )
    for month in (1, 5, 9):
        conversion = ConversionFactory(
            click__publisher=publisher, created_at=datetime(2026, month, 9, tzinfo=UTC)
        )
        old_delivery.objects.create(
            postback_id=postback.pk,
            publisher_id=publisher.pk,
            offer_id=conversion.offer_id,
            trigger="conversion",
            record_type="conversion",
            conversion_id=conversion.pk,
            transaction_id=conversion.click.transaction_id,
            url="http://publisher.example/pb",
        )
    migrate(TARGET)

    migrate(PREVIOUS)

    for table in TABLES:
        assert relkind(table) == "r"
        assert primary_key(table) == "PRIMARY KEY (id)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT id) FROM tracking_delivery")
        assert cursor.fetchone() == (3, 3)
        cursor.execute(
            "SELECT count(*) FROM pg_class "
            "WHERE relname ~ '^tracking_delivery(attempt)?_(p[0-9]|default)'"
        )
        assert cursor.fetchone() == (0,)
        # The foreign keys are back with the plain tables.
        cursor.execute(
            "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'tracking_delivery'::regclass AND contype = 'f'"
        )
        assert cursor.fetchone()[0] == 6
