"""Lean database access for the hot path (clicks and postbacks).

Building and compiling QuerySets, and preparing every field through ``Model.save()``, cost
more CPU per postback than the database work itself (measured with cProfile; see
docs/benchmarks.md). The few reads and writes of the hot path therefore run SQL that is
built once per model from the model's own fields; the rules stay in Python
(tracking/postback.py) and the guarantees stay in the database's constraints.
"""

import functools
from contextlib import nullcontext
from typing import Any, TypeVar

from django.db import connection, models, transaction

M = TypeVar("M", bound=models.Model)

#: The largest ID of the definitions' 32-bit AutoFields (offers, publishers, events): a
#: bigger number names nothing, and is never sent to the database, where it would overflow.
MAX_DEFINITION_ID = 2**31 - 1


def fetch(sql: str, params: Any) -> list[tuple]:
    """Run one read and return its rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def instance(model: type[M], **values: Any) -> M:
    """A model instance loaded from ``values`` as the ORM would load it; other fields deferred.

    ``Model.from_db`` takes values in the model's field order; this takes them by name.
    """
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


def insert(row: models.Model) -> None:
    """``row.save(force_insert=True)`` in one statement, without the ORM's per-save work."""
    sql, fields = _insert_sql(type(row))
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(row, fields))
        row.pk = cursor.fetchone()[0]
    _mark_saved(row)


def insert_linked(first: models.Model, second: models.Model, link: str) -> None:
    """Insert ``first``, then ``second`` with its foreign key ``link`` pointing at it, atomically.

    On PostgreSQL this is one statement, a data-modifying CTE: a statement is atomic by
    itself, so it needs one round trip instead of BEGIN, two INSERTs and COMMIT. Inside an
    outer transaction it runs in a savepoint, so a refused insert leaves that transaction
    usable. Elsewhere (SQLite) the two inserts share a transaction. Either way a constraint
    that refuses either row raises (``IntegrityError``) and nothing is written.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            insert(first)
            setattr(second, link, first)
            insert(second)
        return
    sql, first_fields, second_fields = _insert_linked_sql(type(first), type(second), link)
    values = _values(first, first_fields) + _values(second, second_fields)
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(sql, values)
        second.pk, first.pk = cursor.fetchone()
    _mark_saved(first)
    _mark_saved(second)
    setattr(second, link, first)


def _mark_saved(row: models.Model) -> None:
    row._state.adding = False
    row._state.db = connection.alias


def _values(row: models.Model, fields: list[tuple[models.Field, bool]]) -> list[Any]:
    return [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        if needs_prep
        else getattr(row, field.attname)
        for field, needs_prep in fields
    ]


def _fields(model: type[models.Model], exclude_column: str = "") -> list[tuple]:
    """The inserted fields, each with whether its value needs the field's own preparation.

    psycopg adapts plain Python values (str, int, bool, Decimal, aware datetimes) exactly
    as Django would; only JSON needs the field's preparation there. Other engines (SQLite
    stores datetimes as naive UTC text) get every value prepared by its field.
    """
    prepare_all = connection.vendor != "postgresql"
    return [
        (field, prepare_all or isinstance(field, models.JSONField))
        for field in model._meta.concrete_fields
        if not field.primary_key and field.column != exclude_column
    ]


def _columns(fields: list[tuple]) -> str:
    return ", ".join(connection.ops.quote_name(field.column) for field, _ in fields)


def _placeholders(fields: list[tuple]) -> str:
    return ", ".join(["%s"] * len(fields))


# Only table and column names from the models are interpolated below; values are bound.


@functools.cache
def _insert_sql(model: type[models.Model]) -> tuple[str, list[tuple]]:
    fields = _fields(model)
    table = connection.ops.quote_name(model._meta.db_table)
    sql = f"INSERT INTO {table} ({_columns(fields)}) VALUES ({_placeholders(fields)}) RETURNING id"  # noqa: S608
    return sql, fields


@functools.cache
def _insert_linked_sql(
    first_model: type[models.Model], second_model: type[models.Model], link: str
) -> tuple[str, list[tuple], list[tuple]]:
    quote = connection.ops.quote_name
    link_column = second_model._meta.get_field(link).column
    first_fields = _fields(first_model)
    second_fields = _fields(second_model, exclude_column=link_column)
    sql = (
        f"WITH first AS (INSERT INTO {quote(first_model._meta.db_table)} "  # noqa: S608
        f"({_columns(first_fields)}) VALUES ({_placeholders(first_fields)}) RETURNING id) "
        f"INSERT INTO {quote(second_model._meta.db_table)} "
        f"({_columns(second_fields)}, {quote(link_column)}) "
        f"SELECT {_placeholders(second_fields)}, first.id FROM first "
        f"RETURNING id, {quote(link_column)}"
    )
    return sql, first_fields, second_fields
