"""The postback log partitioned by month on PostgreSQL (tracking/partitions.py), and the marks
of what retention removed (``PruneMark``, tracking/retention.py).

On PostgreSQL the table is rebuilt as ``PARTITION BY RANGE (created_at)``
(``partitions.partition_table``): its rows are copied month by month into a partition each
(from the oldest row's month to three months ahead, plus the DEFAULT partition), with the
same columns, check constraints, identity (continuing from the old table's last ID) and
every index under its own name and comment.
A unique key of a partitioned table must include the partition key, so the primary key
becomes ``(id, created_at)`` in the database; the ORM keeps ``id`` (an ID is still unique:
it comes from one identity sequence, and nothing else writes IDs).

Nothing may reference the log by a foreign key (its own links to clicks, offers and
records carry no database constraint, models.py): a key on ``id`` alone cannot point at a
partitioned table. The migration checks and stops with a clear message if something does.

The copy holds the table locked for the migration's duration (postbacks wait): on a big
log, run it in a quiet hour; docs/scaling.md has the measured rate. On SQLite nothing
changes but the new model.
"""

from datetime import UTC, datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from tracking import partitions

TABLE = "tracking_postbacklog"
MONTHS_AHEAD = 3

#: Which query each index serves (the same words as the model's comments), kept on the
#: indexes themselves so `\d+` in psql says it too; partitions' indexes copy them.
COMMENTS = {
    "tracking_postbacklog_pkey": (
        "One row by its ID (the admin's and API's detail); (id, created_at) because a "
        "partitioned table's unique key must hold its partition key."
    ),
    "postbacklog_created": "The log list newest first, and date-range filters.",
    "postbacklog_reason_created": (
        "Which postbacks were rejected and why, for a period; outcome charts."
    ),
    "postbacklog_transaction_id": "Debugging one click's postbacks by transaction_id.",
    "postbacklog_offer_created": (
        "Log filtered by offer for a period; with reason included, the reports' outcomes "
        "by reason for one offer is an index-only scan."
    ),
}


def partition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or partitions.is_partitioned(TABLE):
        return
    with connection.cursor() as cursor:
        partitions.partition_table(
            cursor, TABLE, now=datetime.now(UTC), months_ahead=MONTHS_AHEAD, comments=COMMENTS
        )


def unpartition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or not partitions.is_partitioned(TABLE):
        return
    with connection.cursor() as cursor:
        partitions.unpartition_table(cursor, TABLE, comments={})


class Migration(migrations.Migration):
    dependencies = [("tracking", "0009_offer_rules")]

    operations = [
        # The one foreign key to the log (0009_offer_rules): a key on id alone cannot
        # reference a partitioned table, so it goes (its unique index stays).
        migrations.AlterField(
            model_name="keptpostback",
            name="log",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="kept",
                to="tracking.postbacklog",
            ),
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
        migrations.CreateModel(
            name="PruneMark",
            fields=[
                (
                    "kind",
                    models.CharField(
                        choices=[("postback_log", "Postback log"), ("clicks", "Unconverted clicks")],
                        max_length=20,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("before", models.DateTimeField()),
                ("pruned_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["postback_log", "clicks"])),
                        name="prunemark_kind_valid",
                    )
                ],
            },
        ),
    ]
