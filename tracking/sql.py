"""Lean database access for the hot path (clicks and postbacks).

Measured with cProfile and under load (docs/benchmarks.md): per accepted postback,
building QuerySets and model instances, psycopg's client-side parameter quoting of ~40
values and a separate health-check ``SELECT 1`` cost more than the database's own work.
So the hot path's few statements are written in SQL here, built once from the models' own
fields, and run like this:

- **server-side binding, prepared once per connection** (``PreparedCursor``): the values
  travel apart from the statement, and PostgreSQL parses and plans each statement once
  per connection instead of once per hit;
- **the first statement of a request is the health check**: a reused connection that
  turns out dead (a restarted server) is replaced and the statement sent again, instead
  of sending a ``SELECT 1`` before every request (``CONN_HEALTH_CHECKS`` keeps its meaning;
  Django's own check still runs, once, if the ORM is used later in the same request);
- through Django's cursor wrapper, so errors are Django's (``IntegrityError``, …),
  broken connections are closed at the end of the request, and query capture in tests
  sees every statement.

The rules stay in Python (tracking/rules.py, tracking/services.py); the guarantees stay
in the database's constraints.
"""

import functools
import re
import threading
from typing import Any

from django.conf import settings
from django.core.signals import request_started
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    models,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.dispatch import receiver

#: The largest ID of the definitions' 32-bit AutoFields (offers, publishers, events): a
#: bigger number names nothing, and is never sent to the database, where it would overflow.
MAX_DEFINITION_ID = 2**31 - 1
#: PostgreSQL's SQLSTATE for a transaction aborted to break a deadlock.
DEADLOCK = "40P01"


def is_deadlock(error: Exception) -> bool:
    """Whether a database error is PostgreSQL breaking a deadlock (the statement, or its
    transaction, was rolled back whole and may simply be tried again)."""
    return getattr(error.__cause__, "sqlstate", None) == DEADLOCK


@functools.cache
def on_postgresql() -> bool:
    """Whether the database is PostgreSQL (fixed for the life of the process)."""
    return connection.vendor == "postgresql"


class _Request(threading.local):
    #: Whether this thread's connection has run a hot-path statement in the current request
    #: (Django keeps one connection per thread).
    checked = False


_request = _Request()


@receiver(request_started)
def _request_started(**kwargs: object) -> None:
    # Connected after Django's close_old_connections (at import, i.e. on the first hit), so
    # a connection reused from an earlier request is unchecked again.
    _request.checked = False


def run(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run one statement of the hot path and return its rows (every statement here
    returns rows).

    The first statement on a connection reused from an earlier request doubles as its
    health check: if it fails because the connection is dead, the connection is replaced
    and the statement sent once more. (A statement that fails on a dead connection was
    not run by the server that answers now: a restarted server knows nothing of it.)
    Where Django has already checked the connection in this request (an ORM query came
    first), its check stands.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` is a lookup
    if (
        not _request.checked
        and db.health_check_enabled
        and not db.health_check_done
        and db.connection is not None
        and not db.in_atomic_block
    ):
        try:
            rows = _run(db, sql, params)
        except (OperationalError, InterfaceError):
            db.close()
            rows = _run(db, sql, params)
        _request.checked = True
        return rows
    return _run(db, sql, params)


def _run(db: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> list[tuple]:
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    # PostgreSQL's own placeholders, numbered once per statement: psycopg then sends the
    # text as it is instead of parsing it on every call (it caches its parse only for
    # statements under 4 kB, and the longest here are longer).
    query, names = numbered(sql)
    cursor = _cursor(db)
    try:
        cursor.execute(query, [params[name] for name in names])
        return cursor.fetchall()
    finally:
        if db.queries_logged:
            cursor.close()  # a capturing cursor is made per statement


_PLACEHOLDER_RE = re.compile(r"%\((\w+)\)s")


@functools.cache
def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its named placeholders (``%(name)s``) as PostgreSQL numbers them ($1,
    $2…); and the names in that order (a name used twice is one parameter)."""
    names: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f"${names.setdefault(match[1], len(names) + 1)}"

    text = _PLACEHOLDER_RE.sub(number, sql).replace("%%", "%")
    return text, tuple(names)


def _cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """The connection's hot-path cursor (PostgreSQL), made once per connection and kept.

    A psycopg cursor keeps the dumpers of the parameters' types and the loaders of the
    results' column types it has set up; a new cursor per statement set them all up again
    (measured: ~7 % of an accepted postback's Python, ~30 loaders and dumpers each time).
    The hot path's statements each fetch their rows whole before the next is sent, and a
    connection belongs to one thread, so one cursor serves them all.
    """
    # Not db.cursor(): that would run the health check's own SELECT 1 first.
    db.ensure_connection()
    raw = db.connection
    if db.queries_logged:
        # Capturing queries (DEBUG, tests) reads the statement's text back from psycopg,
        # which keeps it only for statements sent unprepared.
        with db.wrap_database_errors:
            cursor = _prepared_cursor_class()(raw)
        cursor.prepare = False
        return db.make_debug_cursor(cursor)
    kept = getattr(db, _KEPT, None)
    if kept is None or kept.connection is not raw or kept.closed:
        with db.wrap_database_errors:
            kept = _prepared_cursor_class()(raw)
        setattr(db, _KEPT, kept)
    return db.make_cursor(kept)


#: Where a connection wrapper keeps its hot-path cursor (``_cursor``).
_KEPT = "_clicktrail_hot_cursor"


@functools.cache
def _prepared_cursor_class() -> type:
    from psycopg import RawCursor

    options = settings.DATABASES["default"].get("OPTIONS", {})

    class PreparedCursor(RawCursor):
        """Server-side binding with PostgreSQL's own placeholders (``numbered``); every
        statement prepared on first use per connection (unless prepared statements are
        switched off: ``CONN_PREPARED_STATEMENTS``)."""

        prepare = options.get("prepare_threshold") is not None

        def execute(self, query, params=None, *, prepare=None, binary=None):  # noqa: ANN001, ANN201
            prepare = self.prepare if prepare is None else prepare
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparedCursor


def given_rows_sql(
    alias: str, columns: "dict[str, str]", *, one: bool, json_param: str, prefix: str = ""
) -> str:
    """A FROM item of the rows a statement is given, with these columns (name: type): one row
    as plain parameters (each named ``prefix`` + its column), any other number as one JSON
    text (``json_param``) read with ``json_to_recordset``. Reading the JSON and joining on it
    cost a statement ~12 µs more than one row's parameters (docs/benchmarks.md, session 21);
    binding an array per column cost psycopg more than the JSON."""
    if one:
        listed = ", ".join(
            f"%({prefix}{name})s::{type_} AS {name}" for name, type_ in columns.items()
        )
        return f"(SELECT {listed}) AS {alias}"
    typed = ", ".join(f"{name} {type_}" for name, type_ in columns.items())
    return f"json_to_recordset(%({json_param})s::json) AS {alias}({typed})"


_TYPMOD_RE = re.compile(r"\(.*\)")


# --- Building statements from the models ------------------------------------------------
# Only table and column names from the models are interpolated; values are always bound.


class Row:
    """The columns of one model's INSERT, named by attribute (``click_id``, ``revenue``…).

    ``values(row)`` gives the bound parameters for a dict of attribute values, prepared as
    each engine needs and named with ``prefix`` (two rows in one statement keep their
    parameters apart); ``select_list`` the placeholders with each column's type spelled out
    (PostgreSQL cannot infer a parameter's type in a SELECT list, as it can in VALUES).
    """

    def __init__(
        self, model: type[models.Model], *, exclude: tuple[str, ...] = (), prefix: str = ""
    ) -> None:
        self.model = model
        self.prefix = prefix
        self.fields = [
            field
            for field in model._meta.concrete_fields
            if not field.primary_key and field.attname not in exclude
        ]
        self.table = connection.ops.quote_name(model._meta.db_table)
        self.names = [field.attname for field in self.fields]
        self.columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)

    @functools.cached_property
    def select_list(self) -> str:
        return self.select_list_with({})

    def select_list_with(self, expressions: dict[str, str]) -> str:
        """The select list, with the columns named in ``expressions`` taken from those SQL
        expressions (another CTE's columns) instead of parameters."""
        if not on_postgresql():
            return ", ".join(
                expressions.get(name, f"%({self.prefix}{name})s") for name in self.names
            )
        # The base type without length or scale ("varchar", "numeric"): a cast to
        # varchar(255) would cut a longer value silently, where the column refuses it.
        return ", ".join(
            expressions.get(field.attname)
            or f"%({self.prefix}{field.attname})s::{_TYPMOD_RE.sub('', field.db_type(connection))}"
            for field in self.fields
        )

    @functools.cached_property
    def placeholders(self) -> str:
        return ", ".join(f"%({self.prefix}{name})s" for name in self.names)

    def values(self, row: dict[str, Any]) -> dict[str, Any]:
        """Bound values for ``row``. psycopg adapts plain values (str, int, bool, Decimal,
        aware datetimes) exactly as Django would, and JSON arrives already encoded; other
        engines (SQLite keeps datetimes as naive UTC text) get each value prepared by its
        field, as ``Model.save()`` would."""
        prefix = self.prefix
        if on_postgresql():
            return {prefix + name: value for name, value in row.items()} if prefix else row
        return {
            prefix + field.attname: row[field.attname]
            if isinstance(field, models.JSONField)
            else field.get_db_prep_save(row[field.attname], connection)
            for field in self.fields
        }
