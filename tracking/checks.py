"""Check constraints of the tracking path's tables, made cheap to start on PostgreSQL.

PostgreSQL prepares a table's check constraints from their stored expression trees at the
start of every statement that writes the table (``ExecRelCheck``: ``stringToNode`` and
``ExecPrepareExpr``, for every INSERT and UPDATE, prepared statement or not). A Django
``CheckConstraint`` such as ``Q(reason__in=[23 reasons])`` is stored as a tree of ~5,000
characters, one node per value and cast, so it costs more to prepare than to evaluate:
measured, a postback log row cost 75 µs to insert with its four big constraints and 21 µs
without them (docs/benchmarks.md "Session 18").

``make_cheap`` keeps each constraint, under its own name and with the same predicate, but
moves the predicate into an ``IMMUTABLE`` PL/pgSQL function of the columns it reads
(``ct_check_<constraint>``): the constraint's tree is then one function call, and PL/pgSQL
keeps the compiled predicate for the connection's life. The function's body is the SQL
Django writes for the constraint, so the two cannot disagree; ``restore`` puts Django's form
back (a migration's reverse, or before a migration changes such a constraint:
tests/tracking/test_cheap_checks.py fails while a hot table's constraint is big again).

SQLite prepares nothing per statement: these functions do nothing there.
"""

from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

#: The constraints made cheap, by model (``app_label.ModelName``): those of the tables every
#: postback, accepted record, delivery or status change writes, beyond a plain comparison.
CHEAP = {
    "tracking.PostbackLog": [
        "postbacklog_reason_valid",
        "postbacklog_final_reason_valid",
        "postbacklog_accepted_links_record",
        "postbacklog_type_valid",
    ],
    "tracking.Conversion": ["conversion_status_valid"],
    "tracking.EventRecord": ["eventrecord_status_valid"],
    "tracking.Delivery": [
        "delivery_trigger_valid",
        "delivery_record_type_valid",
        "delivery_outcome_valid",
        "delivery_one_record",
        "delivery_due_only_when_pending",
        "delivery_status_change_only_for_status",
    ],
    "tracking.StatusChange": [
        "statuschange_status_valid",
        "statuschange_source_valid",
        "statuschange_one_record",
        "statuschange_is_a_change",
    ],
}


def function_name(constraint_name: str) -> str:
    return f"ct_check_{constraint_name}"


def _constraint(model: type[models.Model], name: str) -> models.CheckConstraint:
    return next(c for c in model._meta.constraints if c.name == name)


def _columns(model: type[models.Model], constraint: models.CheckConstraint) -> list[models.Field]:
    names = sorted(constraint.condition.referenced_base_fields)
    return [model._meta.get_field(name) for name in names]


def make_cheap(
    schema_editor: BaseDatabaseSchemaEditor, model: type[models.Model], name: str
) -> None:
    """Replace ``model``'s check constraint ``name`` by the same predicate in a function (see
    the module docstring). Added ``NOT VALID`` and validated after: the rows are checked
    without holding writers out (``VALIDATE`` takes a ``SHARE UPDATE EXCLUSIVE`` lock), so
    run it in a non-atomic migration for that to hold."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    constraint = _constraint(model, name)
    fields = _columns(model, constraint)
    predicate = constraint._get_check_sql(model, schema_editor)
    quote = schema_editor.quote_name
    params = ", ".join(f"{quote(f.column)} {f.cast_db_type(connection)}" for f in fields)
    args = ", ".join(quote(f.column) for f in fields)
    function = function_name(name)
    # The parameters are named after the columns, so the predicate reads them as it read
    # the row's columns.
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {quote(function)}({params}) RETURNS boolean "
        f"LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ BEGIN RETURN ({predicate}); END $$"
    )
    _swap(schema_editor, model, name, f"{quote(function)}({args})")


def restore(schema_editor: BaseDatabaseSchemaEditor, model: type[models.Model], name: str) -> None:
    """Put Django's own form of the constraint back and drop its function."""
    if schema_editor.connection.vendor != "postgresql":
        return
    constraint = _constraint(model, name)
    quote = schema_editor.quote_name
    _swap(schema_editor, model, name, constraint._get_check_sql(model, schema_editor))
    fields = _columns(model, constraint)
    types = ", ".join(f.cast_db_type(schema_editor.connection) for f in fields)
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {quote(function_name(name))}({types})")


def _swap(
    schema_editor: BaseDatabaseSchemaEditor, model: type[models.Model], name: str, check: str
) -> None:
    """Constraint ``name`` of ``model`` becomes ``CHECK (check)``: dropped and added again in
    one statement, ``NOT VALID``, then validated without holding writers out."""
    quote = schema_editor.quote_name
    table = quote(model._meta.db_table)
    schema_editor.execute(
        f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}, "
        f"ADD CONSTRAINT {quote(name)} CHECK ({check}) NOT VALID"
    )
    schema_editor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote(name)}")
