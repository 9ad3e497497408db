"""Read-only admin lists of what was recorded, with totals, CSV export and the reports page.

These tables hold millions of rows, so every list: filters on indexed columns only (no
DISTINCT-based filters, no facet counts, no date hierarchy), searches by exact match (an
index lookup, not ``LIKE '%…%'``), counts at most ``LIST_COUNT_CAP`` rows for pagination,
and shows the last 30 days unless another period is chosen.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst

from offers.models import Offer
from tracking.csv_export import csv_response
from tracking.filters import DateOrDateTimeField
from tracking.models import (
    Click,
    Conversion,
    EventRecord,
    PostbackLog,
    Reason,
    RecordStatus,
    StatusChange,
)
from tracking.reports import ReportFilterSet, period_of
from tracking.retention import period_pruned
from tracking.selectors import (
    Period,
    count_by,
    days_between,
    money_totals,
    postback_outcomes,
    report,
    rollup_covers,
    rollup_totals,
)
from tracking.status import REASON_LIMIT, record_status_change, status_change_preview

LIST_COUNT_CAP = 10_000
#: The reports page's status choice: approved (the default), one status, or every status.
REPORT_STATUS_CHOICES = [
    ("", "Approved"),
    ("pending", "Pending"),
    ("rejected", "Rejected"),
    ("approved,pending,rejected", "Every status"),
]
DEFAULT_DAYS = 30
REPORT_MAX_DAYS = 366
#: The list filters the Reports page understands, as the lists name them.
REPORT_FILTERS = {
    "offer__id__exact": "offer",
    "offer": "offer",
    "since": "since",
    "until": "until",
    "status__exact": "status",
}


def amount_text(value: Decimal | None) -> str:
    """An amount as people read it, through Django's localisation: ``1,234.50``.

    Two decimals, more only where the value has them (a sale ``amount`` is stored with four
    places, ``49.9000`` shows ``49.90``, ``0.1234`` keeps its four).
    """
    if value is None:
        return ""
    places = max(2, -value.normalize().as_tuple().exponent)
    return formats.number_format(value, decimal_pos=places, force_grouping=True)


def moment(value: datetime) -> str:
    """A short local time for a list cell, the whole one (with the zone) on hover."""
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{} <span class="ct-quiet">{}</span></time>',
        value.isoformat(),
        formats.date_format(local, "DATETIME_FORMAT") + f" ({local.tzname()})",
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M"),
    )


def named(obj: Any) -> str:
    """A definition by its name, its ID on hover (the name alone saves a list's width)."""
    if obj is None:
        return "-"
    return format_html('<span title="ID {}">{}</span>', obj.pk, obj.name)


def long_code(value: str) -> str:
    """A long identifier cut short by CSS: the whole value is on hover and is what a
    selection copies."""
    if not value:
        return "-"
    return format_html('<span class="ct-code" title="{}">{}</span>', value, value)


REASON_LABELS = dict(Reason.choices)


def reason_badge(reason: str) -> str:
    """The reason's label, coloured by outcome, with its code (what the API and the
    endpoint's JSON say) on hover."""
    return format_html(
        '<span class="ct-reason ct-reason-{}" title="{}">{}</span>',
        # A status postback's updated / unchanged answers are accepted ones too.
        "accepted" if reason in (Reason.ACCEPTED, Reason.UPDATED, Reason.UNCHANGED) else "rejected",
        reason,
        REASON_LABELS.get(reason, reason),
    )


class CappedPaginator(Paginator):
    """Counts at most ``LIST_COUNT_CAP`` + 1 rows: a page view never counts a whole table.

    Past the cap the list offers the first pages only; the totals above the list still
    give the exact count, and a narrower filter reaches any row.
    """

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: LIST_COUNT_CAP + 1].count()


class PeriodFilter(admin.ListFilter):
    """``since``/``until`` (ISO dates, whole days in TIME_ZONE, ``until`` inclusive).

    With neither given the list shows the last 30 days; ``period=all`` shows everything.
    """

    title = "period"
    template = "admin/tracking/period_filter.html"
    parameters = ("since", "until", "period")

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]
        field = DateOrDateTimeField(required=False)
        try:
            self.since = field.clean(self.used_parameters.get("since"))
            self.until = field.clean(self.used_parameters.get("until"))
        except Exception as exc:  # a forms.ValidationError: the admin shows "?e=1"
            raise IncorrectLookupParameters(exc) from exc
        self.everything = self.used_parameters.get("period") == "all"
        self.defaulted = not (self.everything or self.since or self.until)
        if self.defaulted:
            today = timezone.localdate()
            self.since, self.until = today - timedelta(days=DEFAULT_DAYS - 1), today

    def period(self) -> Period:
        if self.everything:
            return Period()
        return period_of(self.since, self.until)

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.parameters)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return self.period().apply(queryset)

    def choices(self, changelist: Any) -> list[dict[str, Any]]:
        today = timezone.localdate()
        first_of_month = today.replace(day=1)
        last_month_end = first_of_month - timedelta(days=1)
        presets = [
            ("Today", today, today),
            ("Last 7 days", today - timedelta(days=6), today),
            (f"Last {DEFAULT_DAYS} days", today - timedelta(days=DEFAULT_DAYS - 1), today),
            ("This month", first_of_month, today),
            ("Last month", last_month_end.replace(day=1), last_month_end),
        ]
        choices = []
        for label, since, until in presets:
            choices.append(
                {
                    "selected": not self.everything and (self.since, self.until) == (since, until),
                    "query_string": changelist.get_query_string(
                        {"since": since.isoformat(), "until": until.isoformat()}, ["period"]
                    ),
                    "display": label,
                }
            )
        choices.append(
            {
                "selected": self.everything,
                "query_string": changelist.get_query_string({"period": "all"}, ["since", "until"]),
                "display": "All time",
            }
        )
        self.form = self.form_context(changelist)  # rendered under the choices
        return choices

    def form_context(self, changelist: Any) -> dict[str, Any]:
        """The custom range form keeps every other filter as a hidden field."""
        kept = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name not in self.parameters
            for value in values
        ]
        as_date = [v.date() if isinstance(v, datetime) else v for v in (self.since, self.until)]
        return {"kept": kept, "since": as_date[0], "until": as_date[1]}


class RecordAdmin(admin.ModelAdmin):
    """What all recorded-row lists share: read-only, totals, CSV export, fast on big tables."""

    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    # Sorting millions of rows by an unindexed column would take seconds: newest first only.
    sortable_by = ["created"]
    change_list_template = "admin/tracking/change_list.html"
    #: Exact-match search: these are the fields a search term is compared with.
    search_fields = ["transaction_id"]
    search_help_text = "Exact transaction_id or adv_sub."
    #: (CSV header, ``values_list`` path) of each exported column.
    csv_columns: list[tuple[str, str]] = []
    #: Model fields the detail page shows through a display method (a human label, amounts
    #: formatted, parameters as a table): field name → method name.
    detail_displays: dict[str, str] = {}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *self.detail_displays.values()]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """The model's fields in their order, each through its display method if it has one."""
        shown: list[str] = []
        for name in super().get_fields(request, obj):
            name = self.detail_displays.get(name, name)
            if name not in shown:
                shown.append(name)
        return shown

    @property
    def count_cap(self) -> int:
        return LIST_COUNT_CAP

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="time", ordering="created_at")
    def created(self, record: Any) -> str:
        return moment(record.created_at)

    @admin.display(description="IP address")
    def ip_address(self, record: Any) -> str:
        return record.ip or "-"

    @admin.display(description="offer")
    def offer_name(self, record: Any) -> str:
        return named(record.offer)

    @admin.display(description="publisher")
    def publisher_name(self, record: Any) -> str:
        return named(record.publisher)

    @admin.display(description="offer / event")
    def offer_event(self, record: Any) -> str:
        """The offer, and under it the event (one column: the list's width is for money)."""
        if record.event_id is None:
            return named(record.offer)
        # The log keeps the ID of an event deleted since (its link has no constraint).
        event = record.event
        return format_html(
            '{}<br><span class="ct-event" title="event ID {}">{}</span>',
            named(record.offer),
            record.event_id,
            event.name if event is not None else f"event {record.event_id} (deleted)",
        )

    def reports_url(self, changelist: Any) -> str:
        """The Reports page for what the list shows: its offer and its period."""
        params = changelist.get_filters_params()
        query = {}
        for name, report_name in REPORT_FILTERS.items():
            values = params.get(name)
            if values:
                query[report_name] = values[-1] if isinstance(values, list) else values
        if params.get("period") and not (query.get("since") or query.get("until")):
            # "All time": the longest period the Reports page draws, up to today.
            today = timezone.localdate()
            query["since"] = (today - timedelta(days=REPORT_MAX_DAYS - 1)).isoformat()
            query["until"] = today.isoformat()
        url = reverse("admin:tracking_reports")
        return url + ("?" + urlencode(query) if query else "")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # nobody edits a recorded row by hand, superusers included

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(self.search_condition(term)), False

    def search_condition(self, term: str) -> Q:
        """Exact matches on indexed columns; a click's ID is looked up first (one index probe)
        so the list filters on its own ``click_id`` index instead of joining the click table."""
        click_id = Click.objects.filter(transaction_id=term).values_list("id", flat=True).first()
        return Q(click_id=click_id) | Q(adv_sub=term)

    def totals(self, changelist: Any) -> dict[str, Any]:
        return {"money": list(money_totals(changelist.queryset))}

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            changelist = context["cl"]
            context["totals"] = self.totals(changelist)
            context["export_url"] = (
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_export")
                + changelist.get_query_string()
            )
            context["reports_url"] = self.reports_url(changelist)
            context["count_cap"] = LIST_COUNT_CAP
            # Django says "Select event record to view" to whoever may not change them (all).
            context["title"] = capfirst(self.opts.verbose_name_plural)
        return response

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """What the list shows (same filters, search and period), as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(
                "Invalid filter.\n", content_type="text/plain; charset=utf-8"
            )
        header = [name for name, _ in self.csv_columns]
        fields = [field for _, field in self.csv_columns]
        # iterator(): a server-side cursor on PostgreSQL, so memory stays flat for any size.
        rows = changelist.queryset.values_list(*fields).iterator(chunk_size=5000)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        return csv_response(
            filename=f"{self.opts.model_name}s-{stamp}.csv", header=header, rows=rows
        )


def _money_columns() -> list[tuple[str, str]]:
    return [
        ("revenue", "revenue"),
        ("payout", "payout"),
        ("currency", "currency"),
        ("status", "status"),
        ("status_reason", "status_reason"),
        ("status_changed_at", "status_changed_at"),
    ]


@admin.register(Click)
class ClickAdmin(RecordAdmin):
    list_display = [
        "id",
        "created",
        "transaction_code",
        "offer_name",
        "publisher_name",
        "aff_sub",
        "source",
        "ip_address",
        "is_test",
    ]
    list_display_links = ["id", "transaction_code"]
    detail_displays = {"ip": "ip_address"}
    list_filter = [PeriodFilter, "offer", "offer__advertiser", "publisher", "is_test"]
    list_select_related = ["offer", "publisher"]
    search_help_text = "Exact transaction_id."
    csv_columns = [
        ("id", "id"),
        ("created_at", "created_at"),
        ("transaction_id", "transaction_id"),
        ("offer_id", "offer_id"),
        ("offer", "offer__name"),
        ("publisher_id", "publisher_id"),
        ("publisher", "publisher__name"),
        ("aff_sub", "aff_sub"),
        ("aff_sub2", "aff_sub2"),
        ("aff_sub3", "aff_sub3"),
        ("aff_sub4", "aff_sub4"),
        ("aff_sub5", "aff_sub5"),
        ("source", "source"),
        ("ip", "ip"),
        ("user_agent", "user_agent"),
        ("referrer", "referrer"),
        ("is_test", "is_test"),
    ]

    def search_condition(self, term: str) -> Q:
        return Q(transaction_id=term)

    @admin.display(description="transaction_id")
    def transaction_code(self, click: Click) -> str:
        return long_code(click.transaction_id)

    def totals(self, changelist: Any) -> dict[str, Any]:
        return {"count": changelist.queryset.order_by().count()}


#: The most records one status action changes (each in its own short transaction).
STATUS_ACTION_LIMIT = 5_000


class StatusHistoryInline(admin.TabularInline):
    """The record's status history on its page, oldest first (read-only)."""

    model = StatusChange
    fields = ["created_at", "from_status", "to_status", "reason", "source", "user"]
    readonly_fields = fields
    ordering = ["id"]
    extra = 0
    can_delete = False
    verbose_name = "status change"
    verbose_name_plural = "status history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may see the record sees its history.
        return self.parent_model_admin_view(request)

    def parent_model_admin_view(self, request: HttpRequest) -> bool:
        opts = self.parent_model._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user")


class ConversionHistoryInline(StatusHistoryInline):
    fk_name = "conversion"


class EventRecordHistoryInline(StatusHistoryInline):
    fk_name = "event_record"


class MoneyRecordAdmin(RecordAdmin):
    detail_displays = {
        "revenue": "revenue_display",
        "payout": "payout_display",
        "amount": "amount_display",
    }
    #: Filters the hourly totals can answer (with the period); anything else reads records.
    rollup_filters = frozenset(
        {
            "since",
            "until",
            "period",
            "offer__id__exact",
            "event__id__exact",
            "status__exact",
            "o",
            "q",
        }
    )
    actions = ["approve_selected", "reject_selected", "set_pending_selected"]

    def totals(self, changelist: Any) -> dict[str, Any]:
        """Per status and currency. From the hourly totals when the list is filtered by
        period, offer and status only (the default view: a few thousand rows instead of
        millions), else from the records."""
        period = next(
            (spec.period() for spec in changelist.filter_specs if isinstance(spec, PeriodFilter)),
            None,
        )
        params = changelist.filter_params
        if (
            period is not None
            and not changelist.query
            and set(params) <= self.rollup_filters
            and rollup_covers(group_by=[], period=period)
        ):
            offer = params.get("offer__id__exact", [None])[-1]
            event = params.get("event__id__exact", [None])[-1]
            status = params.get("status__exact", [None])[-1]
            return {
                "by_status": True,
                "money": rollup_totals(
                    kind=self.opts.model_name,
                    period=period,
                    offer=int(offer) if offer else None,
                    event=int(event) if event else None,
                    statuses=[status] if status else None,
                    by_status=True,
                ),
            }
        return {"by_status": True, "money": list(money_totals(changelist.queryset, by_status=True))}

    @admin.display(description="status", ordering="status")
    def status_display(self, record: Conversion | EventRecord) -> str:
        """A small badge (the column stays narrow: the money fits at 1440 px), the status
        reason on hover."""
        return format_html(
            '<span class="ct-status ct-status-{}" title="{}">{}</span>',
            record.status,
            record.status_reason or record.status,
            record.status,
        )

    # --- Status actions (account managers) -----------------------------------------------

    def has_status_permission(self, request: HttpRequest) -> bool:
        """Account managers change statuses: in this project the model's ``change``
        permission means that and nothing else (the record's form stays read-only)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(permissions=["status"], description="Approve selected %(verbose_name_plural)s")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._status_action(request, queryset, RecordStatus.APPROVED, "approve_selected")

    @admin.action(
        permissions=["status"],
        description="Reject selected %(verbose_name_plural)s (with a reason)",
    )
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._status_action(request, queryset, RecordStatus.REJECTED, "reject_selected")

    @admin.action(
        permissions=["status"], description="Set selected %(verbose_name_plural)s pending"
    )
    def set_pending_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._status_action(request, queryset, RecordStatus.PENDING, "set_pending_selected")

    def _status_action(
        self, request: HttpRequest, queryset: QuerySet, status: str, action: str
    ) -> HttpResponse | None:
        """First a confirmation page (how many records change, how much money moves, a
        reason); on confirmation each record is changed through tracking.status."""
        if not self.has_status_permission(request):
            raise PermissionDenied
        records = list(queryset.order_by("id")[: STATUS_ACTION_LIMIT + 1])
        if len(records) > STATUS_ACTION_LIMIT:
            self.message_user(
                request,
                f"Select at most {STATUS_ACTION_LIMIT} records at once (narrow the filters).",
                messages.ERROR,
            )
            return None
        reason = request.POST.get("status_reason", "").strip()
        error = ""
        if request.POST.get("confirm") == "yes":
            if status == RecordStatus.REJECTED and not reason:
                error = "Give a reason for the rejection."
            elif len(reason) > REASON_LIMIT:
                error = f"The reason is longer than {REASON_LIMIT} characters."
            else:
                self._apply_status(request, records, status, reason)
                return None
        preview = status_change_preview(records=records, status=status)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set {len(records)} {self.opts.verbose_name_plural} {status}?",
            "opts": self.opts,
            "status": status,
            "action": action,
            "records": records,
            "preview": preview,
            "money": [
                {"currency": currency, **amounts}
                for currency, amounts in sorted(preview.money.items())
            ],
            "reason": reason,
            "reason_required": status == RecordStatus.REJECTED,
            "reason_limit": REASON_LIMIT,
            "error": error,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "kept_query": request.GET.urlencode(),
        }
        return TemplateResponse(
            request,
            "admin/tracking/status_confirmation.html",
            context,
            status=400 if error else 200,
        )

    def _apply_status(self, request: HttpRequest, records: list, status: str, reason: str) -> None:
        changed = unchanged = followed = 0
        refused: list[str] = []
        for record in records:
            result = record_status_change(
                record=record,
                status=status,
                reason=reason,
                source=StatusChange.Source.ADMIN,
                user=request.user,
            )
            if result.outcome == Reason.UPDATED:
                changed += 1
                followed += len(result.followed)
            elif result.outcome == Reason.UNCHANGED:
                unchanged += 1
            else:
                refused.append(f"#{record.pk}: {result.message}")
        summary = f"{changed} {self.opts.verbose_name_plural} set {status}"
        if followed:
            summary += f"; {followed} event records followed their conversions"
        if unchanged:
            summary += f"; {unchanged} already {status}"
        self.message_user(request, summary + ".", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                f"{len(refused)} refused: " + " ".join(refused[:10]),
                messages.WARNING,
            )

    @admin.display(description="transaction_id")
    def transaction_id(self, record: Conversion | EventRecord) -> str:
        return long_code(record.click.transaction_id)

    @admin.display(description="revenue")
    def revenue_display(self, record: Conversion | EventRecord) -> str:
        return amount_text(record.revenue)

    @admin.display(description="payout")
    def payout_display(self, record: Conversion | EventRecord) -> str:
        return amount_text(record.payout)

    @admin.display(description="profit")
    def profit_display(self, record: Conversion | EventRecord) -> str:
        return format_html(
            '<span class="{}">{}</span>',
            "ct-negative" if record.profit < Decimal("0") else "ct-profit",
            amount_text(record.profit),
        )

    @admin.display(description="cur.")
    def currency_code(self, record: Conversion | EventRecord) -> str:
        return format_html('<span title="currency">{}</span>', record.currency)

    @admin.display(description="amount")
    def amount_display(self, record: Conversion | EventRecord) -> str:
        return amount_text(record.amount) or "-"

    @admin.display(description="adv_sub")
    def adv_sub_display(self, record: Conversion | EventRecord) -> str:
        return long_code(record.adv_sub)


@admin.register(Conversion)
class ConversionAdmin(MoneyRecordAdmin):
    # The money first, after what says which row it is: at 1440 px it is all on screen.
    list_display = [
        "id",
        "created",
        "offer_name",
        "publisher_name",
        "revenue_display",
        "payout_display",
        "profit_display",
        "currency_code",
        "status_display",
        "amount_display",
        "adv_sub_display",
        "transaction_id",
    ]
    list_filter = [PeriodFilter, "status", "offer", "offer__advertiser", "publisher"]
    list_select_related = ["click", "offer", "publisher"]
    inlines = [ConversionHistoryInline]
    csv_columns = [
        ("id", "id"),
        ("created_at", "created_at"),
        ("transaction_id", "click__transaction_id"),
        ("offer_id", "offer_id"),
        ("offer", "offer__name"),
        ("advertiser", "offer__advertiser__name"),
        ("publisher_id", "publisher_id"),
        ("publisher", "publisher__name"),
        *_money_columns(),
        ("amount", "amount"),
        ("adv_sub", "adv_sub"),
        ("adv_sub2", "adv_sub2"),
        ("adv_sub3", "adv_sub3"),
        ("adv_sub4", "adv_sub4"),
        ("adv_sub5", "adv_sub5"),
    ]


@admin.register(EventRecord)
class EventRecordAdmin(MoneyRecordAdmin):
    list_display = [
        "id",
        "created",
        "offer_event",
        "publisher_name",
        "revenue_display",
        "payout_display",
        "profit_display",
        "currency_code",
        "status_display",
        "amount_display",
        "adv_sub_display",
        "transaction_id",
    ]
    list_filter = [PeriodFilter, "status", "offer", "offer__advertiser", "publisher", "event"]
    list_select_related = ["click", "offer", "publisher", "event"]
    inlines = [EventRecordHistoryInline]
    csv_columns = [
        ("id", "id"),
        ("created_at", "created_at"),
        ("transaction_id", "click__transaction_id"),
        ("offer_id", "offer_id"),
        ("offer", "offer__name"),
        ("advertiser", "offer__advertiser__name"),
        ("event_id", "event_id"),
        ("event", "event__name"),
        ("publisher_id", "publisher_id"),
        ("publisher", "publisher__name"),
        ("conversion_id", "conversion_id"),
        *_money_columns(),
        ("amount", "amount"),
        ("adv_sub", "adv_sub"),
        ("adv_sub2", "adv_sub2"),
        ("adv_sub3", "adv_sub3"),
        ("adv_sub4", "adv_sub4"),
        ("adv_sub5", "adv_sub5"),
    ]

    def get_urls(self) -> list:
        return [
            path(
                "reports/",
                self.admin_site.admin_view(self.reports_view),
                name="tracking_reports",
            ),
            *super().get_urls(),
        ]

    def reports_view(self, request: HttpRequest) -> HttpResponse:
        """Charts and tables per day for a period and offer: money, counts, postback outcomes."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        data = request.GET.copy()
        data.pop("group_by", None)
        filterset = ReportFilterSet(data, queryset=EventRecord.objects.all())
        context = {
            **self.admin_site.each_context(request),
            "title": "Reports",
            "time_zone": settings.TIME_ZONE,
            "opts": self.opts,
            "offers": Offer.objects.select_related("advertiser").order_by("name"),
            "form_data": data,
            "errors": {},
            "status_choices": REPORT_STATUS_CHOICES,
        }
        if not filterset.is_valid():
            context["errors"] = filterset.errors
        else:
            # The API's defaults (the last 30 days), shown in the form.
            for name, bound in zip(("since", "until"), filterset.bounds(), strict=True):
                if not data.get(name):
                    data[name] = bound.isoformat()
            period = filterset.period()
            first, last = _report_days(period) if period.start and period.end else (today, None)
            if last is None or not 0 <= (last - first).days < REPORT_MAX_DAYS:
                context["errors"] = {
                    "until": [f"Choose from 1 to {REPORT_MAX_DAYS} days, “To” after “From”."]
                }
        if context["errors"]:
            return TemplateResponse(request, "admin/tracking/reports.html", context, status=400)
        statuses = filterset.statuses()
        context["counted_label"] = " or ".join(statuses) if statuses else "all"
        context["status_rows"] = report(
            group_by=["status"], period=period, offer=filterset.offer_id(), statuses=None
        )
        context.update(
            _report_context(
                rows=report(
                    group_by=["day"], period=period, offer=filterset.offer_id(), statuses=statuses
                ),
                postbacks=filterset.filter_queryset(PostbackLog.objects.all()),
                days=days_between(first, last),
            )
        )
        context["retention"] = period_pruned(period.start)
        return TemplateResponse(request, "admin/tracking/reports.html", context)


def _report_days(period: Period) -> tuple[date, date]:
    """The first and last local day the (bounded) period touches."""
    zone = timezone.get_default_timezone()
    first = timezone.localtime(period.start, zone).date()
    last = timezone.localtime(period.end - timedelta(microseconds=1), zone).date()
    return first, last


def _report_context(
    *, rows: list[dict[str, Any]], postbacks: QuerySet, days: list[date]
) -> dict[str, Any]:
    index = {day: i for i, day in enumerate(days)}
    conversions, events = [0] * len(days), [0] * len(days)
    money: dict[str, dict[str, list[str]]] = {}
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        i = index.get(row["day"])
        if i is None:
            continue
        conversions[i] += row["conversions"]
        events[i] += row["events"]
        series = money.setdefault(
            row["currency"], {key: ["0.00"] * len(days) for key in ("revenue", "payout", "profit")}
        )
        total = totals.setdefault(
            row["currency"],
            {
                "currency": row["currency"],
                "conversions": 0,
                "events": 0,
                "revenue": Decimal("0.00"),
                "payout": Decimal("0.00"),
                "profit": Decimal("0.00"),
            },
        )
        for key in ("revenue", "payout", "profit"):
            series[key][i] = str(row[key])
            total[key] += row[key]
        total["conversions"] += row["conversions"]
        total["events"] += row["events"]
    outcomes: dict[str, list[int]] = {}
    reason_totals: dict[str, int] = {}
    for item in postback_outcomes(postbacks):
        i = index.get(item["day"])
        if i is None:
            continue
        outcomes.setdefault(item["reason"], [0] * len(days))[i] += item["count"]
        reason_totals[item["reason"]] = reason_totals.get(item["reason"], 0) + item["count"]
    labels = REASON_LABELS
    chart = {
        "days": [day.isoformat() for day in days],
        "conversions": conversions,
        "events": events,
        "money": money,
        "outcomes": outcomes,
        "outcome_labels": {reason: labels.get(reason, reason) for reason in outcomes},
    }
    all_postbacks = sum(reason_totals.values())
    return {
        "chart": chart,
        "count_rows": [
            {"day": day, "conversions": conversions[i], "events": events[i]}
            for i, day in enumerate(days)
        ],
        "currencies": [
            {
                "currency": currency,
                "rows": [row for row in rows if row["currency"] == currency],
                "total": totals[currency],
            }
            for currency in sorted(totals)
        ],
        "reasons": [
            {
                "reason": reason,
                "label": labels.get(reason, reason),
                "count": count,
                "share": f"{100 * count / all_postbacks:.1f}",
            }
            for reason, count in sorted(reason_totals.items(), key=lambda kv: -kv[1])
        ],
        "all_postbacks": all_postbacks,
        "accepted_postbacks": reason_totals.get(Reason.ACCEPTED, 0),
        "accepted_share": (
            f"{100 * reason_totals.get(Reason.ACCEPTED, 0) / all_postbacks:.1f}"
            if all_postbacks
            else ""
        ),
    }


@admin.register(PostbackLog)
class PostbackLogAdmin(RecordAdmin):
    list_display = [
        "id",
        "created",
        "reason_display",
        "type",
        "offer_event",
        "amount_param",
        "adv_sub_param",
        "transaction_code",
        "status_display",
        "ip_address",
    ]
    detail_displays = {
        "reason": "reason_display",
        "params": "params_table",
        "secure_masked": "secure_display",
        "ip": "ip_address",
    }
    list_filter = [PeriodFilter, "reason", "type", "offer", "advertiser", "event"]
    list_select_related = ["offer", "event"]
    csv_columns = [
        ("id", "id"),
        ("created_at", "created_at"),
        ("method", "method"),
        ("status_code", "status_code"),
        ("reason", "reason"),
        ("message", "message"),
        ("type", "type"),
        ("transaction_id", "transaction_id"),
        ("advertiser_id", "advertiser_id"),
        ("offer_id", "offer_id"),
        ("event_id", "event_id"),
        ("click_id", "click_id"),
        ("conversion_id", "conversion_id"),
        ("event_record_id", "event_record_id"),
        ("ip", "ip"),
        ("user_agent", "user_agent"),
        ("params", "params"),
        ("decided_at", "decided_at"),
        ("final_status_code", "final_status_code"),
        ("final_reason", "final_reason"),
    ]

    @admin.display(description="reason")
    def reason_display(self, log: PostbackLog) -> str:
        shown = reason_badge(log.reason)
        if log.final_reason:
            # A kept early event's end (docs/postbacks.md "Early events").
            return format_html(
                "{} → {} ({})", shown, reason_badge(log.final_reason), log.final_status_code
            )
        return shown

    @admin.display(description="HTTP")
    def status_display(self, log: PostbackLog) -> int:
        return log.status_code

    @admin.display(description="transaction_id")
    def transaction_code(self, log: PostbackLog) -> str:
        return long_code(log.transaction_id)

    @admin.display(description="amount")
    def amount_param(self, log: PostbackLog) -> str:
        return str(log.params.get("amount", "")) or "-"

    @admin.display(description="adv_sub")
    def adv_sub_param(self, log: PostbackLog) -> str:
        return long_code(str(log.params.get("adv_sub", "")))

    @admin.display(description="Token (masked)")
    def secure_display(self, log: PostbackLog) -> str:
        return format_html("<code>{}</code>", log.secure_masked) if log.secure_masked else "-"

    @admin.display(description="Request parameters")
    def params_table(self, log: PostbackLog) -> str:
        """Every parameter received, as received (``secure`` masked), one row each."""
        if not log.params:
            return "-"
        rows = format_html_join(
            "",
            '<tr><th scope="row"><code>{}</code></th><td><code>{}</code></td></tr>',
            ((name, value) for name, value in log.params.items()),
        )
        return format_html(
            '<table class="ct-params"><thead><tr><th scope="col">parameter</th>'
            '<th scope="col">value</th></tr></thead><tbody>{}</tbody></table>',
            rows,
        )

    def search_condition(self, term: str) -> Q:
        return Q(transaction_id=term) | Q(params__adv_sub=term)

    def totals(self, changelist: Any) -> dict[str, Any]:
        reasons = [
            {**row, "label": REASON_LABELS.get(row["reason"], row["reason"])}
            for row in count_by(changelist.queryset, "reason")
        ]
        return {"count": sum(r["count"] for r in reasons), "reasons": reasons}


# The delivery log (SPEC "Publisher postbacks (outbound)").
from tracking import admin_deliveries  # noqa: E402, F401
