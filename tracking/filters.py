"""Filters of the read API for what was recorded (SPEC "REST API").

``since``/``until`` take an ISO date or date-time. A date means the whole day in
``TIME_ZONE`` (``until`` inclusive: ``until=2026-11-23`` keeps everything of the 23rd); a
date-time is taken as is (naive ones in ``TIME_ZONE``). A malformed value is a ``400`` with
a message under the field's name, as for every filter here.
"""

from datetime import UTC, date, datetime, time, timedelta

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field

from tracking.models import Conversion, EventRecord, PostbackLog, Reason, RecordStatus

# The ID columns filtered here are at most 64-bit; a bigger number names nothing and SQLite
# would overflow on it, so the form refuses it with a message instead.
MAX_ID = 2**63 - 1


@extend_schema_field({"type": "string", "pattern": "^[^\\u0000]*$"})
class TextFilter(django_filters.CharFilter):
    """Exact text. Django's form fields refuse NUL (400), so the schema says it too."""


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(django_filters.NumberFilter):
    """A positive whole number (the ``NumberFilter`` default would take ``1.5``)."""

    field_class = forms.IntegerField

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class DateOrDateTimeField(forms.Field):
    """An ISO date (``2026-11-23``) or date-time (``2026-11-23T14:30:00+01:00``)."""

    default_error_messages = {
        "invalid": "Enter an ISO date (2026-11-23) or date-time (2026-11-23T14:30:00Z).",
        "range": "This date is out of range.",
    }

    def to_python(self, value: str | None) -> date | datetime | None:
        if value in self.empty_values:
            return None
        value = str(value).strip()
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            parsed = parse_datetime(value)
        except ValueError as exc:  # well-formed but impossible, e.g. 2026-02-30
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        try:
            # In UTC: what the database adapters do (year 1 or 9999 may overflow), and an
            # offset such as -18:43 (valid ISO, found by the schema fuzz) is one PostgreSQL
            # refuses as it stands.
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError(self.error_messages["range"], code="range") from exc


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# A date or a date-time: neither OpenAPI format alone describes it, both together do.
# Sent empty, it counts as absent (as for postbacks: macros often expand to nothing).
DATE_OR_DATE_TIME = {
    "anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "maxLength": 0},
    ]
}


@extend_schema_field(DATE_OR_DATE_TIME)
class SinceFilter(django_filters.Filter):
    """From this moment, or from the start of this day in ``TIME_ZONE``."""

    field_class = DateOrDateTimeField

    def filter(self, qs: QuerySet, value: date | datetime | None) -> QuerySet:
        if value is None:
            return qs
        if not isinstance(value, datetime):
            value = _start_of_day(value)
        return qs.filter(**{f"{self.field_name}__gte": value})


@extend_schema_field(DATE_OR_DATE_TIME)
class UntilFilter(django_filters.Filter):
    """Up to this moment, or to the end of this day in ``TIME_ZONE`` (inclusive)."""

    field_class = DateOrDateTimeField

    def filter(self, qs: QuerySet, value: date | datetime | None) -> QuerySet:
        if value is None:
            return qs
        if isinstance(value, datetime):
            return qs.filter(**{f"{self.field_name}__lte": value})
        if value == date.max:
            return qs
        return qs.filter(**{f"{self.field_name}__lt": _start_of_day(value + timedelta(days=1))})


@extend_schema_field({"type": "string", "enum": list(RecordStatus.values)})
class StatusFilter(django_filters.BaseCSVFilter, django_filters.ChoiceFilter):
    """``status=pending`` or ``status=pending,rejected``: records in any of these statuses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("choices", RecordStatus.choices)
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)


class ConversionFilter(django_filters.FilterSet):
    offer = IdFilter(field_name="offer_id", help_text="Offer ID.")
    advertiser = IdFilter(field_name="offer__advertiser_id", help_text="Advertiser ID.")
    publisher = IdFilter(field_name="publisher_id", help_text="Publisher ID.")
    transaction_id = TextFilter(
        field_name="click__transaction_id", help_text="The click's transaction_id (exact)."
    )
    adv_sub = TextFilter(help_text="The advertiser's reference (exact).")
    status = StatusFilter(
        help_text="approved, pending or rejected; comma-separated for several (default: all)."
    )
    since = SinceFilter(field_name="created_at", help_text="ISO date or date-time, inclusive.")
    until = UntilFilter(
        field_name="created_at",
        help_text="ISO date (the whole day, inclusive) or date-time (inclusive).",
    )

    class Meta:
        model = Conversion
        fields = [
            "offer",
            "advertiser",
            "publisher",
            "transaction_id",
            "adv_sub",
            "status",
            "since",
            "until",
        ]


class EventRecordFilter(ConversionFilter):
    event = IdFilter(field_name="event_id", help_text="Event ID.")

    class Meta:
        model = EventRecord
        fields = [*ConversionFilter.Meta.fields, "event"]


class PostbackLogFilter(django_filters.FilterSet):
    reason = django_filters.ChoiceFilter(choices=Reason.choices, help_text="The outcome.")
    transaction_id = TextFilter(help_text="As received (exact).")
    offer = IdFilter(field_name="offer_id", help_text="Offer ID (where the postback got that far).")
    advertiser = IdFilter(field_name="advertiser_id", help_text="Advertiser of the token.")
    since = SinceFilter(field_name="created_at", help_text="ISO date or date-time, inclusive.")
    until = UntilFilter(
        field_name="created_at",
        help_text="ISO date (the whole day, inclusive) or date-time (inclusive).",
    )

    class Meta:
        model = PostbackLog
        fields = ["reason", "transaction_id", "offer", "advertiser", "since", "until"]
