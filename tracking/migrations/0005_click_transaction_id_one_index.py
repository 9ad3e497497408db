"""``Click.transaction_id`` unique by a named constraint instead of ``unique=True``, without
the second index Django's PostgreSQL backend makes for ``unique=True`` (varchar_pattern_ops,
for ``LIKE 'prefix%'``): nothing matches transaction_ids by prefix, and every click paid a
random insert into it (docs/benchmarks.md).

On PostgreSQL the existing unique index is kept and only renamed, so no index over every
click is rebuilt (nor the table locked against new clicks while it would be), and the
pattern index is dropped. Elsewhere (SQLite) the schema editor does it the ordinary way.
"""

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

NAME = "click_transaction_id_unique"
FORMER_NAME = "tracking_click_transaction_id_key"  # PostgreSQL's name for the column's UNIQUE
PATTERN_INDEX = "tracking_click_transaction_id_like"

UNIQUE_CONSTRAINT = """
SELECT con.conname FROM pg_constraint con
JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
WHERE con.conrelid = 'tracking_click'::regclass AND con.contype = 'u'
  AND cardinality(con.conkey) = 1 AND att.attname = 'transaction_id'
"""

PATTERN_INDEXES = """
SELECT idx.relname FROM pg_index ind
JOIN pg_class idx ON idx.oid = ind.indexrelid
JOIN pg_opclass opc ON opc.oid = ind.indclass[0]
JOIN pg_attribute att ON att.attrelid = ind.indrelid AND att.attnum = ind.indkey[0]
WHERE ind.indrelid = 'tracking_click'::regclass AND ind.indnatts = 1
  AND att.attname = 'transaction_id' AND opc.opcname = 'varchar_pattern_ops'
"""


class ExceptOnPostgreSQL(Operation):
    """``operation``'s change of the project state everywhere, its schema change only on
    databases other than PostgreSQL (where ``keep_unique_index`` does it in place)."""

    reversible = True

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    def state_forwards(self, app_label, state):
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"{self.operation.describe()} (except on PostgreSQL)"


def _names(schema_editor, sql: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)
        return [name for (name,) in cursor.fetchall()]


def keep_unique_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    (current,) = _names(schema_editor, UNIQUE_CONSTRAINT)
    schema_editor.execute(
        f"ALTER TABLE tracking_click RENAME CONSTRAINT {quote(current)} TO {quote(NAME)}"
    )
    for index in _names(schema_editor, PATTERN_INDEXES):
        schema_editor.execute(f"DROP INDEX {quote(index)}")


def restore_unique_field(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE tracking_click RENAME CONSTRAINT {NAME} TO {FORMER_NAME}")
    schema_editor.execute(
        f"CREATE INDEX {PATTERN_INDEX} ON tracking_click (transaction_id varchar_pattern_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [("tracking", "0004_reports")]

    operations = [
        ExceptOnPostgreSQL(
            migrations.AlterField(
                model_name="click",
                name="transaction_id",
                field=models.CharField(max_length=64),
            )
        ),
        ExceptOnPostgreSQL(
            migrations.AddConstraint(
                model_name="click",
                constraint=models.UniqueConstraint(fields=["transaction_id"], name=NAME),
            )
        ),
        migrations.RunPython(keep_unique_index, restore_unique_field),
    ]
