"""Helpers for the few hot-path reads written in SQL (see docs/benchmarks.md for why)."""

from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


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
