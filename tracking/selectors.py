"""Reads for analysts: totals, daily reports and postback outcomes over the hit tables.

Two sources give the same numbers:

- On PostgreSQL, ``tracking_hourlytotal`` (migrations 0004_reports, 0006_record_status):
  per offer, UTC hour, event (0 for conversions), currency and status, kept exact by
  triggers in the transaction that writes or changes each record. A report for a period
  of whole hours, by day, offer, event and status, reads a few thousand rows there
  instead of every record (docs/benchmarks.md).
- Otherwise (SQLite, grouping by publisher, a period that does not start and end on whole
  hours, other list filters) the records themselves, with queries shaped for the covering
  indexes in ``tracking/models.py``: filter on ``offer`` and a ``created_at`` range, read
  only ``event``, ``currency``, ``revenue`` and ``payout``, count with ``COUNT(*)`` (not
  ``COUNT(id)``, which would visit the heap), so PostgreSQL can use an index-only scan.

Money is never added across currencies: every total and report row is per currency.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from tracking.models import Conversion, EventRecord, RecordStatus

GROUP_KEYS = ("day", "offer", "event", "publisher", "status")
#: What totals and reports count unless asked otherwise (docs/postbacks.md "Approving and
#: rejecting").
COUNTED_STATUSES = (RecordStatus.APPROVED.value,)
#: Group keys that are the record's own column, not a ``<key>_id`` foreign key.
_PLAIN_KEYS = ("day", "status")
ZERO = Decimal("0.00")
MONEY = DecimalField(max_digits=20, decimal_places=2)


def money_sum(field: str) -> Sum:
    return Sum(field, output_field=MONEY)


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


def money_totals(queryset: QuerySet, *, by_status: bool = False) -> QuerySet:
    """Count, revenue, payout and profit of ``queryset`` (any filters), one row per currency
    (per status and currency with ``by_status``, approved first)."""
    keys = ["status", "currency"] if by_status else ["currency"]
    return (
        queryset.order_by()
        .values(*keys)
        .annotate(
            count=Count("*"),
            revenue=money_sum("revenue"),
            payout=money_sum("payout"),
            profit=ExpressionWrapper(F("revenue") - F("payout"), output_field=MONEY),
        )
        .order_by(*keys)
    )


def with_statuses(queryset: QuerySet, statuses: Sequence[str] | None) -> QuerySet:
    """Only records in ``statuses`` (None: every status)."""
    if statuses is None:
        return queryset
    if len(statuses) == 1:
        return queryset.filter(status=statuses[0])
    return queryset.filter(status__in=list(statuses))


def count_by(queryset: QuerySet, field: str) -> QuerySet:
    """How many rows of ``queryset`` carry each value of ``field`` (e.g. the log's reason)."""
    return queryset.order_by().values(field).annotate(count=Count("*")).order_by(field)


def _grouped(queryset: QuerySet, group_by: Sequence[str]) -> QuerySet:
    if "day" in group_by:
        queryset = queryset.annotate(day=local_day())
    keys = [key if key in _PLAIN_KEYS else f"{key}_id" for key in group_by]
    return (
        queryset.order_by()
        .values(*keys, "currency")
        .annotate(count=Count("*"), revenue=money_sum("revenue"), payout=money_sum("payout"))
    )


def report_conversions(conversions: QuerySet, *, group_by: Sequence[str]) -> QuerySet:
    """``conversions`` (already filtered) grouped by ``group_by`` minus ``event``, and currency."""
    return _grouped(conversions, [key for key in group_by if key != "event"])


def report_event_records(event_records: QuerySet, *, group_by: Sequence[str]) -> QuerySet:
    """``event_records`` (already filtered) grouped by ``group_by`` and currency."""
    return _grouped(event_records, group_by)


def _merge(
    group_by: Sequence[str], sources: Iterable[tuple[Iterable[dict[str, Any]], str | None]]
) -> list[dict[str, Any]]:
    """Add grouped items up into report rows, sorted by their keys (``None`` first).

    Each source yields items with the group keys, ``currency``, ``revenue``, ``payout``
    and either ``count`` (added to the source's counter) or ``conversions``/``events``.
    """
    rows: dict[tuple, dict[str, Any]] = {}
    for items, counter in sources:
        for item in items:
            keys = {key: item.get(key if key in _PLAIN_KEYS else f"{key}_id") for key in group_by}
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
            if counter is None:
                row["conversions"] += item["conversions"]
                row["events"] += item["events"]
            else:
                row[counter] += item["count"]
            row["revenue"] += item["revenue"]
            row["payout"] += item["payout"]
    for row in rows.values():
        # Whole cents on every engine (SQLite sums decimals as floats).
        row["revenue"] = row["revenue"].quantize(ZERO)
        row["payout"] = row["payout"].quantize(ZERO)
        row["profit"] = row["revenue"] - row["payout"]

    def order(identity: tuple) -> tuple:
        return tuple((value is not None, value) for value in identity)

    return [rows[identity] for identity in sorted(rows, key=order)]


def report_rows(
    *, group_by: Sequence[str], conversions: QuerySet, event_records: QuerySet
) -> list[dict[str, Any]]:
    """The report from the records: per group and currency, conversions, events, revenue,
    payout and profit.

    ``conversions`` and ``event_records`` come filtered. Conversions and event records of
    the same group add up in one row; grouping by ``event`` puts conversions in rows whose
    ``event`` is ``None``.
    """
    group_by = [key for key in GROUP_KEYS if key in group_by]
    return _merge(
        group_by,
        [
            (report_conversions(conversions, group_by=group_by), "conversions"),
            (report_event_records(event_records, group_by=group_by), "events"),
        ],
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def rollup_covers(*, group_by: Sequence[str], period: Period) -> bool:
    """Whether the hourly totals answer exactly: on PostgreSQL, not by publisher, for a
    period starting and ending on whole UTC hours, in a TIME_ZONE whose days are made of
    whole UTC hours (every zone but a few like Asia/Kolkata, UTC+05:30)."""
    if connection.vendor != "postgresql" or "publisher" in group_by:
        return False
    zone = timezone.get_default_timezone()
    bounds = [moment for moment in (period.start, period.end) if moment is not None]
    if any((moment - EPOCH) % HOUR for moment in bounds):
        return False
    return all(
        not (moment.astimezone(zone).utcoffset() % HOUR) for moment in [*bounds, timezone.now()]
    )


def _rollup_where(
    period: Period,
    offer: int | None,
    event: int | None = None,
    statuses: Sequence[str] | None = COUNTED_STATUSES,
) -> tuple:
    conditions, params = ["TRUE"], []
    if statuses is not None:
        conditions.append("status IN (" + ", ".join(["%s"] * len(statuses)) + ")")
        params.extend(statuses)
    if offer is not None:
        conditions.append("offer_id = %s")
        params.append(offer)
    if event is not None:
        conditions.append("event_id = %s")
        params.append(event)
    if period.start is not None:
        conditions.append("hour >= %s")
        params.append(period.start)
    if period.end is not None:
        conditions.append("hour < %s")
        params.append(period.end)
    return " AND ".join(conditions), params


def rollup_report_rows(
    *,
    group_by: Sequence[str],
    period: Period,
    offer: int | None = None,
    statuses: Sequence[str] | None = COUNTED_STATUSES,
) -> list[dict[str, Any]]:
    """The report from the hourly totals (see ``rollup_covers``); same rows as
    ``report_rows`` over the records."""
    group_by = [key for key in GROUP_KEYS if key in group_by]
    columns = {
        "day": "(hour AT TIME ZONE %s)::date",
        "offer": "offer_id",
        "event": "NULLIF(event_id, 0)",
        "status": "status",
    }
    select = [columns[key] for key in group_by]
    params: list[Any] = [settings_zone()] if "day" in group_by else []
    where, where_params = _rollup_where(period, offer, statuses=statuses)
    numbered = ", ".join(str(i) for i in range(1, len(select) + 2))
    sql = f"""
        SELECT {", ".join([*select, "currency"])},
               coalesce(sum(count) FILTER (WHERE event_id = 0), 0)::bigint,
               coalesce(sum(count) FILTER (WHERE event_id <> 0), 0)::bigint,
               sum(revenue), sum(payout)
        FROM tracking_hourlytotal WHERE {where}
        GROUP BY {numbered} HAVING sum(count) > 0
    """  # noqa: S608 - only fixed column expressions are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *where_params])
        fetched = cursor.fetchall()
    names = [key if key in _PLAIN_KEYS else f"{key}_id" for key in group_by]
    items = [
        {
            **dict(zip(names, values[: len(names)], strict=True)),
            "currency": values[len(names)],
            "conversions": values[len(names) + 1],
            "events": values[len(names) + 2],
            "revenue": values[len(names) + 3],
            "payout": values[len(names) + 4],
        }
        for values in fetched
    ]
    return _merge(group_by, [(items, None)])


def rollup_totals(
    *,
    kind: str,
    period: Period,
    offer: int | None = None,
    event: int | None = None,
    statuses: Sequence[str] | None = None,
    by_status: bool = False,
) -> list[dict[str, Any]]:
    """Count, revenue, payout and profit per currency (per status and currency with
    ``by_status``) of ``kind`` ("conversion" or "eventrecord") from the hourly totals; same
    rows as ``money_totals``. Every status unless ``statuses`` says which."""
    where, params = _rollup_where(period, offer, event, statuses)
    where += " AND event_id = 0" if kind == "conversion" else " AND event_id <> 0"
    keys = "status, currency" if by_status else "currency"
    sql = f"""
        SELECT {keys}, sum(count)::bigint, sum(revenue), sum(payout) FROM tracking_hourlytotal
        WHERE {where} GROUP BY {keys} HAVING sum(count) > 0 ORDER BY {keys}
    """  # noqa: S608 - only fixed conditions are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    totals = []
    for row in rows:
        *key, count, revenue, payout = row
        item = {"status": key[0]} if by_status else {}
        item |= {
            "currency": key[-1],
            "count": count,
            "revenue": revenue,
            "payout": payout,
            "profit": revenue - payout,
        }
        totals.append(item)
    return totals


def settings_zone() -> str:
    return timezone.get_default_timezone_name()


def report(
    *,
    group_by: Sequence[str],
    period: Period,
    offer: int | None = None,
    statuses: Sequence[str] | None = COUNTED_STATUSES,
) -> list[dict[str, Any]]:
    """The report for ``period`` (and ``offer``) counting the records in ``statuses``
    (approved by default; None: every status), from the hourly totals when they can answer
    exactly, else from the records."""
    if rollup_covers(group_by=group_by, period=period):
        return rollup_report_rows(group_by=group_by, period=period, offer=offer, statuses=statuses)
    conversions = with_statuses(period.apply(Conversion.objects.all()), statuses)
    event_records = with_statuses(period.apply(EventRecord.objects.all()), statuses)
    if offer is not None:
        conversions = conversions.filter(offer_id=offer)
        event_records = event_records.filter(offer_id=offer)
    return report_rows(group_by=group_by, conversions=conversions, event_records=event_records)


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
