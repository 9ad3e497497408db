"""``GET /api/v1/reports/``: conversions, events and money per day, offer, event, publisher,
status. Approved records only unless ``status`` (or grouping by status) says otherwise.

The input is a django-filter FilterSet (so the OpenAPI schema documents it and bad input
is a ``400`` with field messages); the numbers come from ``tracking.selectors``. The API and
the admin's Reports page share the period's defaults (the last 30 days, ``DEFAULT_DAYS``)
and the answer says which period it covered.
"""

from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from offers.models import Event, Offer, Publisher
from tracking.filters import (
    DATE_OR_DATE_TIME,
    IdFilter,
    SinceFilter,
    StatusFilter,
    UntilFilter,
)
from tracking.models import EventRecord
from tracking.retention import period_pruned
from tracking.selectors import COUNTED_STATUSES, GROUP_KEYS, Period, report

#: The period a report covers when ``since``/``until`` are not given: the last 30 days,
#: today included (the admin's Reports page and the API alike).
DEFAULT_DAYS = 30


@extend_schema_field({"type": "string", "enum": list(GROUP_KEYS)})
class GroupByFilter(django_filters.BaseCSVFilter, django_filters.ChoiceFilter):
    """``group_by=day,event``: validated here (each value one of GROUP_KEYS), grouped by the
    selectors; it filters nothing. (drf-spectacular documents it as an array, explode=false.)"""

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        return qs


def period_of(since: date | datetime | None, until: date | datetime | None) -> Period:
    """``since``/``until`` as tracking.filters reads them, as a half-open period: a date is
    the whole day in TIME_ZONE, ``until`` inclusive. The admin needs the bounds themselves
    (the days of a chart, the list's period filter)."""
    zone = timezone.get_default_timezone()
    start = end = None
    if isinstance(since, datetime):
        start = since
    elif since is not None:
        start = datetime.combine(since, time.min, tzinfo=zone)
    try:
        if isinstance(until, datetime):
            end = until + timedelta(microseconds=1)
        elif until is not None:
            end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
    except OverflowError:  # until the last day there is: no upper bound
        end = None
    return Period(start=start, end=end)


def report_bounds(
    since: date | datetime | None, until: date | datetime | None
) -> tuple[date | datetime, date | datetime]:
    """``since``/``until`` with their defaults: ``until`` today, ``since`` the 30th day up to
    ``until`` (both local days in TIME_ZONE)."""
    if until is None:
        until = timezone.localdate()
    if since is None:
        last = timezone.localtime(until).date() if isinstance(until, datetime) else until
        since = last - timedelta(days=DEFAULT_DAYS - 1)
    return since, until


class ReportStatusFilter(StatusFilter):
    """Validated here, applied by the selectors (which count from the hourly totals too)."""

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        return qs


class ReportFilterSet(django_filters.FilterSet):
    """The report's input. ``since``, ``until`` and ``offer`` are the read API's own filters
    (tracking/filters.py) and apply alike to conversions, event records and the postback
    log, which share ``offer`` and ``created_at``."""

    group_by = GroupByFilter(
        choices=[(key, key) for key in GROUP_KEYS],
        help_text="Comma-separated, one or more of day, offer, event, publisher, status "
        "(default day).",
    )
    status = ReportStatusFilter(
        help_text="Count records in these statuses, comma-separated (default approved; with "
        "status in group_by, default every status).",
    )
    since = SinceFilter(
        field_name="created_at",
        help_text="ISO date or date-time, inclusive (default: 29 days before until).",
    )
    until = UntilFilter(
        field_name="created_at",
        help_text="ISO date (the whole day, inclusive) or date-time, inclusive (default: today).",
    )
    offer = IdFilter(field_name="offer_id", help_text="Offer ID: only this offer's records.")

    class Meta:
        model = EventRecord
        fields = ["group_by", "status", "since", "until", "offer"]

    def clean_group_by(self) -> list[str]:
        """The validated grouping (call after ``is_valid()``), in GROUP_KEYS order."""
        chosen = self.form.cleaned_data.get("group_by") or ["day"]
        return [key for key in GROUP_KEYS if key in chosen]

    def bounds(self) -> tuple[date | datetime, date | datetime]:
        """``since`` and ``until`` as given or defaulted (call after ``is_valid()``)."""
        data = self.form.cleaned_data
        return report_bounds(data.get("since"), data.get("until"))

    def period(self) -> Period:
        """``since``/``until`` as ``start <= created_at < end`` (call after ``is_valid()``)."""
        return period_of(*self.bounds())

    def offer_id(self) -> int | None:
        return self.form.cleaned_data.get("offer")

    def statuses(self) -> list[str] | None:
        """The statuses to count (call after ``is_valid()``): as asked; else approved, or
        every status (None) when grouping by status."""
        chosen = self.form.cleaned_data.get("status")
        if chosen:
            return sorted(set(chosen))
        if "status" in self.clean_group_by():
            return None
        return list(COUNTED_STATUSES)


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "pattern": r"^-?\d{0,18}(?:\.\d{0,2})?$",
        "example": "26.60",
    }
)
class MoneyField(serializers.DecimalField):
    """An amount as a string with two decimals (the schema shows a real example)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=20, decimal_places=2, **kwargs)


#: The name shown beside each grouped ID, and where it is read from.
NAMED_KEYS = {"offer": Offer, "event": Event, "publisher": Publisher}


class ReportRowSerializer(serializers.Serializer):
    day = serializers.DateField(required=False, help_text="Present when grouping by day.")
    offer = serializers.IntegerField(required=False, help_text="Present when grouping by offer.")
    offer_name = serializers.CharField(
        required=False, help_text="The offer's name, beside its ID when grouping by offer."
    )
    event = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Present when grouping by event; null in the rows of conversions.",
    )
    event_name = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="The event's name when grouping by event; null in the rows of conversions.",
    )
    publisher = serializers.IntegerField(
        required=False, help_text="Present when grouping by publisher."
    )
    publisher_name = serializers.CharField(
        required=False, help_text="The publisher's name, beside its ID when grouping by publisher."
    )
    status = serializers.CharField(required=False, help_text="Present when grouping by status.")
    currency = serializers.CharField()
    conversions = serializers.IntegerField()
    events = serializers.IntegerField()
    revenue = MoneyField(help_text="What the advertiser pays the network, in `currency`.")
    payout = MoneyField(help_text="What the network pays publishers, in `currency`.")
    profit = MoneyField(help_text="Revenue minus payout; negative when payout is larger.")

    def __init__(self, *args: Any, group_by: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if group_by is not None:
            for key in set(GROUP_KEYS) - set(group_by):
                self.fields.pop(key)
                self.fields.pop(f"{key}_name", None)


def with_names(rows: list[dict[str, Any]], group_by: list[str]) -> list[dict[str, Any]]:
    """Each grouped ID with its name beside it (one query per named key)."""
    for key, model in NAMED_KEYS.items():
        if key not in group_by:
            continue
        ids = {row[key] for row in rows if row[key] is not None}
        names = dict(model.objects.filter(pk__in=ids).values_list("pk", "name"))
        for row in rows:
            row[f"{key}_name"] = names.get(row[key]) if row[key] is not None else None
    return rows


class ReportPeriodSerializer(serializers.Serializer):
    since = serializers.CharField(
        help_text="The first day (ISO date) or moment (ISO date-time) covered, as given or "
        "defaulted."
    )
    until = serializers.CharField(help_text="The last day or moment covered, inclusive.")
    time_zone = serializers.CharField(help_text="The zone whose calendar days dates mean.")


class RetentionSerializer(serializers.Serializer):
    """What retention removed (tracking/retention.py). The report's rows are complete
    either way: they come from the records and the hourly totals, never pruned."""

    raw_rows_pruned = serializers.BooleanField(
        help_text="Whether the period reaches before what retention removed: its postback "
        "log rows and unconverted clicks (some or all) are gone."
    )
    postback_log_pruned_before = serializers.DateTimeField(
        allow_null=True, help_text="Postback log rows created before this were removed."
    )
    clicks_pruned_before = serializers.DateTimeField(
        allow_null=True, help_text="Clicks that never converted, made before this, were removed."
    )


class ReportSerializer(serializers.Serializer):
    period = ReportPeriodSerializer(help_text="The period the rows cover.")
    results = ReportRowSerializer(many=True)
    retention = RetentionSerializer()


PERIOD_DESCRIPTION = (
    "An ISO date (`2026-11-01`: the whole day in the server's TIME_ZONE, {tz} here) or an ISO "
    "date-time with its offset (`2026-11-01T09:30:00Z`: that exact moment). Inclusive."
)
REPORT_EXAMPLE = {
    "period": {"since": "2026-11-01", "until": "2026-11-30", "time_zone": "UTC"},
    "results": [
        {
            "day": "2026-11-02",
            "event": None,
            "event_name": None,
            "currency": "USD",
            "conversions": 38,
            "events": 0,
            "revenue": "95.00",
            "payout": "68.40",
            "profit": "26.60",
        },
        {
            "day": "2026-11-02",
            "event": 12,
            "event_name": "purchase",
            "currency": "USD",
            "conversions": 0,
            "events": 11,
            "revenue": "164.70",
            "payout": "109.80",
            "profit": "54.90",
        },
    ],
    "retention": {
        "raw_rows_pruned": False,
        "postback_log_pruned_before": None,
        "clicks_pruned_before": None,
    },
}


class ReportView(GenericAPIView):
    """Conversions, events, revenue, payout and profit, grouped, split by currency.

    Needs the ``view`` permission on event records (analysts and account managers).
    """

    queryset = EventRecord.objects.none()  # names the model whose permission is required
    filterset_class = ReportFilterSet
    pagination_class = None

    @extend_schema(
        summary="Conversions, events, revenue, payout and profit, grouped",
        description=(
            "Rows per group (`group_by`) and currency: amounts in two currencies are never "
            "added up. Approved records only, unless `status` (or `status` in `group_by`) "
            "says otherwise. Without `since` and `until` the report covers the last "
            f"{DEFAULT_DAYS} days, today included, like the admin's Reports page; `period` in "
            "the answer says which period the rows cover. Grouped rows carry the name of "
            "each offer, event and publisher beside its ID."
        ),
        filters=True,
        parameters=[
            OpenApiParameter(
                "since",
                DATE_OR_DATE_TIME,
                description=(
                    "Start of the period. "
                    + PERIOD_DESCRIPTION.format(tz=settings.TIME_ZONE)
                    + f" Default: {DEFAULT_DAYS - 1} days before `until` (the last "
                    f"{DEFAULT_DAYS} days)."
                ),
                examples=[
                    OpenApiExample("A day", value="2026-11-01"),
                    OpenApiExample("A moment", value="2026-11-01T09:30:00Z"),
                ],
            ),
            OpenApiParameter(
                "until",
                DATE_OR_DATE_TIME,
                description=(
                    "End of the period. "
                    + PERIOD_DESCRIPTION.format(tz=settings.TIME_ZONE)
                    + " Default: today."
                ),
                examples=[
                    OpenApiExample("A day", value="2026-11-30"),
                    OpenApiExample("A moment", value="2026-11-30T23:59:59Z"),
                ],
            ),
            OpenApiParameter(
                "offer",
                OpenApiTypes.INT,
                description="An offer's ID: only its conversions and events. Default: every offer.",
                examples=[OpenApiExample("Offer 3", value=3)],
            ),
            OpenApiParameter(
                "group_by",
                {"type": "array", "items": {"type": "string", "enum": list(GROUP_KEYS)}},
                style="form",
                explode=False,
                description="Comma-separated, one or more of `day`, `offer`, `event`, "
                "`publisher`, `status` (default `day`). Grouping by `event` puts conversions "
                "in rows whose `event` is null; grouping by `status` counts every status "
                "unless `status` says otherwise.",
                examples=[
                    OpenApiExample("Per day", value=["day"]),
                    OpenApiExample("Per day and event", value=["day", "event"]),
                    OpenApiExample("Per status", value=["status"]),
                ],
            ),
        ],
        responses=ReportSerializer,
        examples=[
            OpenApiExample(
                "Per day and event, November",
                value=REPORT_EXAMPLE,
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        filterset = ReportFilterSet(request.query_params, queryset=EventRecord.objects.all())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        group_by = filterset.clean_group_by()
        since, until = filterset.bounds()
        rows = report(
            group_by=group_by,
            period=period_of(since, until),
            offer=filterset.offer_id(),
            statuses=filterset.statuses(),
        )
        serializer = ReportRowSerializer(with_names(rows, group_by), many=True, group_by=group_by)
        return Response(
            {
                "period": {
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "time_zone": settings.TIME_ZONE,
                },
                "results": serializer.data,
                "retention": RetentionSerializer(period_pruned(period_of(since, until).start)).data,
            }
        )
