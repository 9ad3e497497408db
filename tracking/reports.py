"""``GET /api/v1/reports/``: conversions, events and money per day, offer, event, publisher,
status. Approved records only unless ``status`` (or grouping by status) says otherwise.

The input is a django-filter FilterSet (so the OpenAPI schema documents it and bad input
is a ``400`` with field messages); the numbers come from ``tracking.selectors``.
"""

from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from tracking.filters import IdFilter, SinceFilter, StatusFilter, UntilFilter
from tracking.models import EventRecord
from tracking.retention import period_pruned
from tracking.selectors import COUNTED_STATUSES, GROUP_KEYS, Period, report


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
    since = SinceFilter(field_name="created_at", help_text="ISO date or date-time, inclusive.")
    until = UntilFilter(
        field_name="created_at",
        help_text="ISO date (the whole day, inclusive) or date-time (inclusive).",
    )
    offer = IdFilter(field_name="offer_id", help_text="Offer ID: only this offer's records.")

    class Meta:
        model = EventRecord
        fields = ["group_by", "status", "since", "until", "offer"]

    def clean_group_by(self) -> list[str]:
        """The validated grouping (call after ``is_valid()``), in GROUP_KEYS order."""
        chosen = self.form.cleaned_data.get("group_by") or ["day"]
        return [key for key in GROUP_KEYS if key in chosen]

    def period(self) -> Period:
        """``since``/``until`` as ``start <= created_at < end`` (call after ``is_valid()``)."""
        data = self.form.cleaned_data
        return period_of(data.get("since"), data.get("until"))

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


class ReportRowSerializer(serializers.Serializer):
    day = serializers.DateField(required=False, help_text="Present when grouping by day.")
    offer = serializers.IntegerField(required=False, help_text="Present when grouping by offer.")
    event = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Present when grouping by event; null in the rows of conversions.",
    )
    publisher = serializers.IntegerField(
        required=False, help_text="Present when grouping by publisher."
    )
    status = serializers.CharField(required=False, help_text="Present when grouping by status.")
    currency = serializers.CharField()
    conversions = serializers.IntegerField()
    events = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=20, decimal_places=2)
    payout = serializers.DecimalField(max_digits=20, decimal_places=2)
    profit = serializers.DecimalField(max_digits=20, decimal_places=2)

    def __init__(self, *args: Any, group_by: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if group_by is not None:
            for key in set(GROUP_KEYS) - set(group_by):
                self.fields.pop(key)


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
    results = ReportRowSerializer(many=True)
    retention = RetentionSerializer()


class ReportView(GenericAPIView):
    """Conversions, events, revenue, payout and profit, grouped, split by currency.

    Needs the ``view`` permission on event records (analysts and account managers).
    """

    queryset = EventRecord.objects.none()  # names the model whose permission is required
    filterset_class = ReportFilterSet
    pagination_class = None

    @extend_schema(responses=ReportSerializer, filters=True)
    def get(self, request: Request) -> Response:
        filterset = ReportFilterSet(request.query_params, queryset=EventRecord.objects.all())
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        group_by = filterset.clean_group_by()
        rows = report(
            group_by=group_by,
            period=filterset.period(),
            offer=filterset.offer_id(),
            statuses=filterset.statuses(),
        )
        serializer = ReportRowSerializer(rows, many=True, group_by=group_by)
        retention = RetentionSerializer(period_pruned(filterset.period().start))
        return Response({"results": serializer.data, "retention": retention.data})
