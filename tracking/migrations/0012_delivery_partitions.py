"""The publisher delivery log partitioned by month on PostgreSQL (tracking/partitions.py).

``tracking_delivery`` and ``tracking_deliveryattempt`` get ``record_created_at``, the
``created_at`` of the record a delivery reports (filled from the records for the rows there
are), and are rebuilt as ``PARTITION BY RANGE (record_created_at)`` with
``partitions.partition_table``, as 0007 did for the postback log. Why the record's month and
not the delivery's own: docs/scaling.md "The publisher delivery log".

- The "once per postback and record" unique keys must hold the partition key: they become
  ``(postback, record, record_created_at)``; a record has one ``created_at``, so they are
  exactly as strict as before.
- The attempts' foreign key to the delivery goes (``db_constraint=False``): a key on ``id``
  alone cannot reference a partitioned table. Attempts share their delivery's month, and
  retention drops both months together.
- So do the delivery's own foreign keys (to records, offers, publishers, postbacks), as the
  postback log has none: dropping a detached month whose table has them takes an ``ACCESS
  EXCLUSIVE`` lock on every table they reference (measured: it waits behind any open read
  of ``tracking_conversion``, and conversions queue behind it), and attaching one locks
  their writers out. The ORM still applies ``on_delete``.

The copy holds both tables locked until the migration commits (the worker waits; postbacks
that fire deliveries wait too): on a big delivery log, run it in a quiet hour. On SQLite
only the columns and constraints change.
"""

from datetime import UTC, datetime

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from tracking import partitions

MONTHS_AHEAD = 3
TABLES = ("tracking_delivery", "tracking_deliveryattempt")

#: Which query each index serves, kept on the indexes (``\\d+`` in psql); partitions copy them.
COMMENTS = {
    "tracking_delivery_pkey": (
        "One delivery by its ID (admin, API, resend); (id, record_created_at) because a "
        "partitioned table's unique key must hold its partition key."
    ),
    "delivery_due": "The worker's claim: pending deliveries by due time.",
    "delivery_created": "The delivery log newest first, and date filters.",
    "delivery_transaction_id": "Search by transaction_id.",
    "tracking_deliveryattempt_pkey": (
        "One attempt by its ID; (id, record_created_at) for the partition key."
    ),
    "deliveryattempt_delivery_at": "A delivery's attempts, in order.",
}


def fill_record_created_at(apps, schema_editor) -> None:  # noqa: ANN001
    delivery = apps.get_model("tracking", "Delivery")
    attempt = apps.get_model("tracking", "DeliveryAttempt")
    conversion = apps.get_model("tracking", "Conversion")
    event_record = apps.get_model("tracking", "EventRecord")
    delivery.objects.update(
        record_created_at=Coalesce(
            Subquery(conversion.objects.filter(pk=OuterRef("conversion_id")).values("created_at")),
            Subquery(
                event_record.objects.filter(pk=OuterRef("event_record_id")).values("created_at")
            ),
        )
    )
    attempt.objects.update(
        record_created_at=Subquery(
            delivery.objects.filter(pk=OuterRef("delivery_id")).values("record_created_at")
        )
    )
    # An attempt whose delivery is gone (none should be: they cascaded) is kept, dated now.
    attempt.objects.filter(record_created_at__isnull=True).update(
        record_created_at=datetime.now(UTC)
    )


def partition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in TABLES:
            if not partitions.is_partitioned(table):
                partitions.partition_table(
                    cursor,
                    table,
                    now=datetime.now(UTC),
                    months_ahead=MONTHS_AHEAD,
                    comments=COMMENTS,
                )


def unpartition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in reversed(TABLES):
            if partitions.is_partitioned(table):
                partitions.unpartition_table(cursor, table, comments={})


class Migration(migrations.Migration):
    dependencies = [("tracking", "0011_delivery_partial_indexes")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="record_created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="record_created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(fill_record_created_at, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="delivery",
            name="record_created_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="record_created_at",
            field=models.DateTimeField(),
        ),
        migrations.RemoveConstraint(
            model_name="delivery", name="delivery_once_per_postback_conversion"
        ),
        migrations.RemoveConstraint(
            model_name="delivery", name="delivery_once_per_postback_event_record"
        ),
        migrations.RemoveConstraint(
            model_name="delivery", name="delivery_once_per_postback_status_change"
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("trigger", "conversion")),
                fields=("postback", "conversion", "record_created_at"),
                name="delivery_once_per_postback_conversion",
            ),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("trigger", "event")),
                fields=("postback", "event_record", "record_created_at"),
                name="delivery_once_per_postback_event_record",
            ),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("trigger", "status")),
                fields=("postback", "status_change", "record_created_at"),
                name="delivery_once_per_postback_status_change",
            ),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="delivery",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="tracking.delivery",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="postback",
            field=models.ForeignKey(
                blank=True, null=True, db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="deliveries",
                to="offers.publisherpostback",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="publisher",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="offers.publisher",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="offer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="offers.offer",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="conversion",
            field=models.ForeignKey(
                blank=True, null=True, db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="tracking.conversion",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="event_record",
            field=models.ForeignKey(
                blank=True, null=True, db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="tracking.eventrecord",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="status_change",
            field=models.ForeignKey(
                blank=True, null=True, db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="tracking.statuschange",
            ),
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
