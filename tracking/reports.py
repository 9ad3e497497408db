"""``GET /api/v1/reports/``: conversions, events and money per day, offer, event, publisher.

The input is a django-filter FilterSet (so the OpenAPI schema documents it and bad input
is a ``400`` with field messages); the numbers come from ``tracking.selectors``.
"""

from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from offers.models import Offer
from tracking.models import EventRecord
from tracking.selectors import GROUP_KEYS, Period, report_rows

MOMENT_HELP = (
    "An ISO date (2026-11-01: the whole day in the configured TIME_ZONE) or date-time "
    "(2026-11-01T12:00:00Z; without an offset it is read in TIME_ZONE)."
)


class MomentField(forms.Field):
    """An ISO date or date-time: a date stays a ``date``, a date-time becomes aware."""

    default_error_messages = {
        "invalid": "Enter an ISO date (2026-11-01) or date-time (2026-11-01T12:00:00Z).",
        "range": "Out of range: use a year from 1000 to 9998.",
    }

    def to_python(self, value: Any) -> date | datetime | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        try:
            parsed: date | datetime = (
                date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
            )
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if not 1000 <= parsed.year <= 9998:
            raise forms.ValidationError(self.error_messages["range"], code="range")
        if isinstance(parsed, datetime) and timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
        return parsed


@extend_schema_field(OpenApiTypes.STR)
class MomentFilter(django_filters.Filter):
    """``since``/``until`` for the report: validated here, applied by the selectors."""

    field_class = MomentField


# One item; drf-spectacular makes the CSV filter an array of them (explode=false).
@extend_schema_field({"type": "string", "enum": list(GROUP_KEYS)})
class GroupByFilter(django_filters.BaseCSVFilter, django_filters.ChoiceFilter):
    pass


def period_of(since: date | datetime | None, until: date | datetime | None) -> Period:
    """``since``/``until`` as a half-open period: a date is the whole day in TIME_ZONE, and
    ``until`` is inclusive (a date up to the end of that day, a date-time up to itself)."""
    zone = timezone.get_default_timezone()
    start = end = None
    if isinstance(since, datetime):
        start = since
    elif since is not None:
        start = datetime.combine(since, time.min, tzinfo=zone)
    if isinstance(until, datetime):
        end = until + timedelta(microseconds=1)
    elif until is not None:
        end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
    return Period(start=start, end=end)


class ReportFilterSet(django_filters.FilterSet):
    group_by = GroupByFilter(
        choices=[(key, key) for key in GROUP_KEYS],
        help_text="Comma-separated, one or more of day, offer, event, publisher (default day).",
    )
    since = MomentFilter(help_text=MOMENT_HELP)
    until = MomentFilter(help_text=MOMENT_HELP + " Inclusive.")
    offer = django_filters.ModelChoiceFilter(
        queryset=Offer.objects.all(), help_text="Only this offer's conversions and events."
    )

    class Meta:
        model = EventRecord
        fields = ["group_by", "since", "until", "offer"]

    def clean_report(self) -> dict[str, Any]:
        """The validated input, or ``ValidationError`` with a message per field."""
        if not self.is_valid():
            raise ValidationError(self.errors)
        data = self.form.cleaned_data
        since, until = data.get("since"), data.get("until")
        period = period_of(since, until)
        if period.start and period.end and period.start >= period.end:
            raise ValidationError({"until": ["Must not be before since."]})
        offer = data.get("offer")
        return {
            "group_by": [key for key in GROUP_KEYS if key in (data.get("group_by") or ["day"])],
            "period": period,
            "offer": offer.pk if offer else None,
        }


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


class ReportSerializer(serializers.Serializer):
    results = ReportRowSerializer(many=True)


class ReportView(GenericAPIView):
    """Conversions, events, revenue, payout and profit, grouped, split by currency.

    Needs the ``view`` permission on event records (analysts and account managers).
    """

    queryset = EventRecord.objects.none()  # names the model whose permission is required
    filterset_class = ReportFilterSet
    pagination_class = None

    @extend_schema(responses=ReportSerializer, filters=True)
    def get(self, request: Request) -> Response:
        report = ReportFilterSet(request.query_params, queryset=self.get_queryset()).clean_report()
        rows = report_rows(**report)
        serializer = ReportRowSerializer(rows, many=True, group_by=report["group_by"])
        return Response({"results": serializer.data})
