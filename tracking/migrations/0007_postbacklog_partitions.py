"""The postback log partitioned by month on PostgreSQL (tracking/partitions.py), and the marks
of what retention removed (``PruneMark``, tracking/retention.py).

On PostgreSQL the table is rebuilt as ``PARTITION BY RANGE (created_at)``: its rows are
copied month by month into a partition each (from the oldest row's month to three months
ahead, plus the DEFAULT partition), with the same columns, check constraints, identity
(continuing from the old table's last ID) and every index under its own name and comment.
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
ASIDE = "tracking_postbacklog_unpartitioned"
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


def _rows(cursor, sql: str, params: list | None = None) -> list[tuple]:  # noqa: ANN001
    cursor.execute(sql, params or [])
    return cursor.fetchall()


def _refuse_references(cursor) -> None:  # noqa: ANN001
    referencing = _rows(
        cursor,
        "SELECT conname, conrelid::regclass::text FROM pg_constraint "
        "WHERE confrelid = %s::regclass AND contype = 'f'",
        [TABLE],
    )
    if referencing:
        names = ", ".join(f"{name} on {table}" for name, table in referencing)
        raise RuntimeError(
            f"{TABLE} cannot be partitioned while foreign keys reference it ({names}): a key "
            "on id alone cannot reference a partitioned table. Drop them (db_constraint=False) "
            "first."
        )


def _move_aside(cursor, table: str, aside: str) -> tuple[list[str], str]:  # noqa: ANN001
    """Rename ``table`` to ``aside`` with its indexes, primary key and identity sequence,
    freeing their names; return the indexes' definitions (under their original names) and
    the primary key's definition."""
    indexes = _rows(
        cursor,
        """
        SELECT idx.relname, pg_get_indexdef(i.indexrelid), con.conname,
               pg_get_constraintdef(con.oid)
        FROM pg_index i JOIN pg_class idx ON idx.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
        WHERE i.indrelid = %s::regclass ORDER BY idx.relname
        """,
        [table],
    )
    ((sequence,),) = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO \"{aside}_id_seq\"")
    definitions, primary_key = [], ""
    for name, definition, constraint, constraint_definition in indexes:
        if constraint:
            primary_key = constraint_definition
            cursor.execute(f'ALTER TABLE "{aside}" RENAME CONSTRAINT "{constraint}" TO "{aside}_pkey"')
        else:
            definitions.append(definition.replace(" ON ONLY ", " ON "))
            cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:55]}_aside"')
    return definitions, primary_key


def _create_like(cursor, table: str, aside: str, *, partitioned: bool, primary_key: str) -> None:  # noqa: ANN001
    by = " PARTITION BY RANGE (created_at)" if partitioned else ""
    cursor.execute(
        f'CREATE TABLE "{table}" (LIKE "{aside}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        f"INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS){by}"
    )
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" {primary_key}')
    # The identity goes on from the old table's last ID.
    ((last, called),) = _rows(cursor, f'SELECT last_value, is_called FROM "{aside}_id_seq"')  # noqa: S608
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, last, called])


def _comment(cursor, table: str) -> None:  # noqa: ANN001
    for name, comment in COMMENTS.items():
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            cursor.execute(f'COMMENT ON INDEX "{name}" IS %s', [comment])


def partition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or partitions.is_partitioned(TABLE):
        return
    with connection.cursor() as cursor:
        _refuse_references(cursor)
        definitions, _ = _move_aside(cursor, TABLE, ASIDE)
        _create_like(
            cursor, TABLE, ASIDE, partitioned=True, primary_key="PRIMARY KEY (id, created_at)"
        )
        for definition in definitions:
            cursor.execute(definition)  # on the new, partitioned table, under its own name
        _comment(cursor, TABLE)
        ((oldest,),) = _rows(cursor, f'SELECT min(created_at) FROM "{ASIDE}"')  # noqa: S608
        now = datetime.now(UTC)
        first = partitions.month_start(min(oldest or now, now))
        last = partitions.add_months(partitions.month_start(now), MONTHS_AHEAD)
        for month in partitions.months_between(first, last):
            partitions.create_partition(cursor, table=TABLE, month=month, copy_from=ASIDE)
        # Rows from beyond the last month made (clocks far ahead) are kept too.
        partitions.create_partition(cursor, table=TABLE, month=None)
        cursor.execute(
            f'INSERT INTO "{TABLE}" SELECT * FROM "{ASIDE}" WHERE created_at >= %s',  # noqa: S608
            [partitions.add_months(last, 1)],
        )
        ((kept,), (copied,)) = _rows(
            cursor,
            f'SELECT count(*) FROM "{ASIDE}" UNION ALL SELECT count(*) FROM "{TABLE}"',  # noqa: S608
        )
        if kept != copied:
            raise RuntimeError(f"{kept} postback log rows, {copied} copied: nothing was changed")
        cursor.execute(f'DROP TABLE "{ASIDE}"')
        cursor.execute(f'ANALYZE "{TABLE}"')


def unpartition(apps, schema_editor) -> None:  # noqa: ANN001
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or not partitions.is_partitioned(TABLE):
        return
    with connection.cursor() as cursor:
        definitions, _ = _move_aside(cursor, TABLE, ASIDE)
        _create_like(cursor, TABLE, ASIDE, partitioned=False, primary_key="PRIMARY KEY (id)")
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{ASIDE}"')  # noqa: S608
        for definition in definitions:
            cursor.execute(definition)
        cursor.execute(f'DROP TABLE "{ASIDE}"')  # with its partitions


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
