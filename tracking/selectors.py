"""Reads for analysts: totals, daily reports and postback outcomes over the hit tables.

Every query here is shaped for the covering indexes in ``tracking/models.py``: it filters
on ``offer`` and a ``created_at`` range, reads only ``event``, ``currency``, ``revenue`` and
``payout``, and counts with ``COUNT(*)`` (not ``COUNT(id)``, which would fetch each row
from the heap), so PostgreSQL answers with an index-only scan. Money is never added across
currencies: every total and report row is per currency.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

GROUP_KEYS = ("day", "offer", "event", "publisher")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Period:
    """``start <= created_at < end``; either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def apply(self, queryset: QuerySet) -> QuerySet:
        if self.start is not None:
            queryset = queryset.filter(created_at__gte=self.start)
        if self.end is not None:
            queryset = queryset.filter(created_at__lt=self.end)
        return queryset


def local_day():  # noqa: ANN201 - a query expression
    """The calendar day of ``created_at`` in the configured TIME_ZONE."""
    return TruncDate("created_at", tzinfo=timezone.get_default_timezone())


def money_totals(queryset: QuerySet) -> QuerySet:
    """Count, revenue, payout and profit of ``queryset`` (any filters), one row per currency."""
    return (
        queryset.order_by()
        .values("currency")
        .annotate(
            count=Count("*"),
            revenue=Sum("revenue"),
            payout=Sum("payout"),
            profit=F("revenue") - F("payout"),  # the two sums above
        )
        .order_by("currency")
    )


def count_by(queryset: QuerySet, field: str) -> QuerySet:
    """How many rows of ``queryset`` carry each value of ``field`` (e.g. the log's reason)."""
    return queryset.order_by().values(field).annotate(count=Count("*")).order_by(field)


def _grouped(queryset: QuerySet, group_by: Sequence[str]) -> QuerySet:
    if "day" in group_by:
        queryset = queryset.annotate(day=local_day())
    keys = [key if key == "day" else f"{key}_id" for key in group_by]
    return (
        queryset.order_by()
        .values(*keys, "currency")
        .annotate(count=Count("*"), revenue=Sum("revenue"), payout=Sum("payout"))
    )


def report_conversions(conversions: QuerySet, *, group_by: Sequence[str]) -> QuerySet:
    """``conversions`` (already filtered) grouped by ``group_by`` minus ``event``, and currency."""
    return _grouped(conversions, [key for key in group_by if key != "event"])


def report_event_records(event_records: QuerySet, *, group_by: Sequence[str]) -> QuerySet:
    """``event_records`` (already filtered) grouped by ``group_by`` and currency."""
    return _grouped(event_records, group_by)


def report_rows(
    *, group_by: Sequence[str], conversions: QuerySet, event_records: QuerySet
) -> list[dict[str, Any]]:
    """The report: per group and currency, conversions, events, revenue, payout and profit.

    ``conversions`` and ``event_records`` come filtered (period, offer). Conversions and
    event records of the same group add up in one row; grouping by ``event`` puts
    conversions in rows whose ``event`` is ``None``. Rows are sorted by their keys
    (``None`` first), then currency.
    """
    group_by = [key for key in GROUP_KEYS if key in group_by]
    rows: dict[tuple, dict[str, Any]] = {}

    def add(source: Iterable[dict[str, Any]], counter: str) -> None:
        for item in source:
            keys = {key: item.get(key if key == "day" else f"{key}_id") for key in group_by}
            identity = (*keys.values(), item["currency"])
            row = rows.get(identity)
            if row is None:
                row = rows[identity] = {
                    **keys,
                    "currency": item["currency"],
                    "conversions": 0,
                    "events": 0,
                    "revenue": ZERO,
                    "payout": ZERO,
                }
            row[counter] += item["count"]
            row["revenue"] += item["revenue"]
            row["payout"] += item["payout"]

    add(report_conversions(conversions, group_by=group_by), "conversions")
    add(report_event_records(event_records, group_by=group_by), "events")
    for row in rows.values():
        row["profit"] = row["revenue"] - row["payout"]

    def order(identity: tuple) -> tuple:
        return tuple((value is not None, value) for value in identity)

    return [rows[identity] for identity in sorted(rows, key=order)]


def postback_outcomes(postbacks: QuerySet) -> QuerySet:
    """Postback log rows (already filtered) per local day and reason: "rejected, and why"."""
    return (
        postbacks.annotate(day=local_day())
        .order_by()
        .values("day", "reason")
        .annotate(count=Count("*"))
        .order_by("day", "reason")
    )


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive, so charts show empty days as zero."""
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
