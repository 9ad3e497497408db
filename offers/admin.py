"""The account managers' admin: advertisers, publishers, offers and their events.

Writes go through offers.services (advertiser_create, advertiser_rotate_token, event_create,
event_update, event_delete); every URL shown comes from offers.postback_urls. Permissions
are Django's model permissions, which the roles (tracking/migrations/0002_roles.py) grant:
analysts hold only ``view_*`` and so see everything read-only.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats
from django.utils.html import format_html, format_html_join

from offers.admin_postbacks import PublisherPostbackInline
from offers.caps import cap_created, cap_usage
from offers.forms import EVENT_FIELDS, AdvertiserAddForm, AdvertiserForm, EventForm, OfferForm
from offers.models import Advertiser, Event, Offer, OfferCap, Publisher
from offers.parameters import DOUBLE_COUNT_WARNING, counts_resends_again
from offers.postback_urls import (
    conversion_status_url,
    event_postback_url,
    event_status_url,
    global_postback_url,
    offer_postback_url,
    placeholder_mismatches,
    tracking_url,
)
from offers.services import (
    EventHasRecords,
    advertiser_create,
    advertiser_rotate_token,
    event_create,
    event_delete,
    event_update,
)
from offers.tokens import mask_token


class ZeroIfEmptyField(forms.IntegerField):
    def clean(self, value: Any) -> int:
        return super().clean(value) or 0


#: What an event's own page adds to the fields it is defined with (docs/postbacks.md "Early
#: events").
EVENT_RULE_FIELDS = ["wait_for_conversion_minutes"]

#: The offer page's tabs: (anchor, title). The anchor is what the URL fragment names.
OFFER_TABS = [
    ("general", "General"),
    ("tracking", "Tracking"),
    ("revenue-payout", "Revenue & Payout"),
    ("rules", "Caps & rules"),
    ("test-postback", "Test postback"),
]
TAB_ANCHORS = {anchor for anchor, _ in OFFER_TABS}
#: The sub-ID parameters of a tracking link (SPEC "Tracking link").
TRACKING_SUBS = ["aff_sub", "aff_sub2", "aff_sub3", "aff_sub4", "aff_sub5", "source"]


def money_rule(money_type: str, value: Decimal, currency: str) -> str:
    """``1,250.00 USD (CPA)`` for an amount, ``30.00 % of sale (CPS)`` for a percentage,
    through Django's number formatting."""
    shown = formats.number_format(value, decimal_pos=2, force_grouping=True)
    if money_type == "CPS":
        return f"{shown} % of sale (CPS)"
    return f"{shown} {currency} ({money_type})"


def reveals_tokens(request: HttpRequest) -> bool:
    """Whole tokens (and URLs carrying them) are for those who manage advertisers or offers."""
    user = request.user
    return user.has_perm("offers.change_advertiser") or user.has_perm("offers.change_offer")


def shown_url(request: HttpRequest, url: str, advertiser: Advertiser) -> str:
    """A generated URL as this user may see it: the token masked for read-only roles."""
    if reveals_tokens(request):
        return url
    return url.replace(advertiser.postback_token, mask_token(advertiser.postback_token))


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "token", "offer_count", "created_at"]
    search_fields = ["name", "id__exact"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Advertiser]:
        # Meta.ordering does not apply to aggregating queries: order explicitly for paging.
        return super().get_queryset(request).annotate(offer_count=Count("offers")).order_by("name")

    form = AdvertiserForm

    def get_fields(self, request: HttpRequest, obj: Advertiser | None = None) -> list[str]:
        return ["name"] if obj is None else ["name", "allowed_ips", "created_at"]

    def get_form(
        self,
        request: HttpRequest,
        obj: Advertiser | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm]:
        if obj is None:
            kwargs["form"] = AdvertiserAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Advertiser:
        if change:
            return super().save_form(request, form, change)
        # Created here, through the service, so the token and its digest are set together.
        return advertiser_create(name=form.cleaned_data["name"])

    def save_model(
        self, request: HttpRequest, obj: Advertiser, form: ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list, change: bool
    ) -> None:
        # An advertiser made by the service has no form-held relations left to save.
        if change:
            super().save_related(request, form, formsets, change)

    @admin.display(description="Token")
    def token(self, advertiser: Advertiser) -> str:
        return format_html("<code>{}</code>", advertiser.masked_token)

    @admin.display(description="Offers", ordering="offer_count")
    def offer_count(self, advertiser: Advertiser) -> int:
        return advertiser.offer_count

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/rotate-token/",
                self.admin_site.admin_view(self.rotate_token_view),
                name="offers_advertiser_rotate_token",
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Advertiser | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk:
            url = global_postback_url(obj)
            context["token"] = {
                "masked": obj.masked_token,
                # Whole only for those who give it to the advertiser; never in the page else.
                "whole": obj.postback_token if reveals_tokens(request) else "",
                "global_url": url if reveals_tokens(request) else "",
                "global_url_masked": url.replace(obj.postback_token, obj.masked_token),
                "rotate_url": reverse("admin:offers_advertiser_rotate_token", args=[obj.pk]),
                "can_rotate": self.has_change_permission(request, obj),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def rotate_token_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then replace the token. The confirmation says the old one dies at once."""
        advertiser = self.get_object(request, unquote(object_id))
        if advertiser is None:
            raise Http404("No advertiser has this ID.")
        if not self.has_change_permission(request, advertiser):
            raise PermissionDenied
        change_url = reverse("admin:offers_advertiser_change", args=[advertiser.pk])
        if request.method == "POST":
            advertiser_rotate_token(advertiser=advertiser)
            self.log_change(request, advertiser, "Rotated the postback token.")
            self.message_user(
                request,
                f"The postback token of “{advertiser}” was rotated. The old token no longer "
                "works: give the advertiser the new postback URLs.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": advertiser,
            "title": "Rotate the postback token?",
            "offer_count": advertiser.offers.count(),
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/offers/advertiser/rotate_token.html", context)


#: The most tracking links a publisher's page lists (the active offers, newest first).
PUBLISHER_LINKS = 50


@admin.register(Publisher)
class PublisherAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "id__exact"]
    readonly_fields = ["publisher_id", "tracking_links", "created_at"]
    inlines = [PublisherPostbackInline]

    def get_fields(self, request: HttpRequest, obj: Publisher | None = None) -> list[str]:
        if obj is None:
            return ["name"]
        return ["name", "publisher_id", "tracking_links", "created_at"]

    @admin.display(description="Publisher ID")
    def publisher_id(self, publisher: Publisher) -> str:
        return format_html(
            '<code>{}</code> <span class="help">(the <code>aff_id</code> of its tracking '
            "links)</span>",
            publisher.pk,
        )

    @admin.display(description="Tracking links")
    def tracking_links(self, publisher: Publisher) -> str:
        """The link of every active offer for this publisher, each with a copy button."""
        offers = list(
            Offer.objects.filter(status=Offer.Status.ACTIVE).order_by("-id")[: PUBLISHER_LINKS + 1]
        )
        if not offers:
            return "No active offer yet."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a> <span class="ct-quiet">(ID {})</span></td>'
            '<td><span class="ct-copy-row"><code class="ct-url">{}</code>'
            '<button type="button" class="button ct-copy" data-copy="{}">Copy</button>'
            "</span></td></tr>",
            (
                (
                    reverse("admin:offers_offer_change", args=[offer.pk]) + "#tracking",
                    offer.name,
                    offer.pk,
                    url,
                    url,
                )
                for offer in offers[:PUBLISHER_LINKS]
                for url in [tracking_url(offer, publisher_id=publisher.pk)]
            ),
        )
        more = (
            format_html(
                '<p class="help">The {} newest active offers; every offer\'s Tracking tab '
                "builds the link too.</p>",
                PUBLISHER_LINKS,
            )
            if len(offers) > PUBLISHER_LINKS
            else ""
        )
        return format_html(
            '<table class="ct-publisher-links" data-publisher-links><thead><tr>'
            '<th scope="col">Offer</th><th scope="col">Tracking link</th></tr></thead>'
            '<tbody>{}</tbody></table><p class="help">Publishers may add <code>aff_sub</code> … '
            "<code>aff_sub5</code> and <code>source</code> to a link.</p>{}",
            rows,
            more,
        )


@dataclass(frozen=True)
class EventRow:
    """One row of the offer page's events table."""

    event: Event
    revenue: str
    payout: str
    postback_url: str
    warnings: tuple[str, ...] = ()
    status_url: str = ""


class OfferCapInline(admin.TabularInline):
    """The offer's caps (docs/postbacks.md "Caps"), each with its use in the current period."""

    model = OfferCap
    extra = 0
    fields = ["metric", "period", "limit", "publisher", "mode", "used"]
    readonly_fields = ["used"]
    autocomplete_fields = ["publisher"]
    verbose_name = "cap"
    verbose_name_plural = "Caps (a full cap holds conversions: soft → pending, hard → rejected)"

    @admin.display(description="Used this period")
    def used(self, cap: OfferCap) -> str:
        if cap.pk is None:
            return "—"
        used = cap_usage([cap])[cap.pk]
        return format_html("{} of {}", f"{used:.2f}", f"{cap.limit:.2f}")


def double_counts(event: Event, offer: Offer) -> bool:
    return counts_resends_again(
        allow_multiple=event.allow_multiple,
        offer_mapping=offer.parameters,
        event_mapping=event.parameters,
    )


def url_warnings(offer: Offer, events: list[Event]) -> dict[int, list[str]]:
    """Per event ID, what is wrong with the URL the advertiser would be given."""
    warnings: dict[int, list[str]] = {}
    for event in events:
        if double_counts(event, offer):
            warnings.setdefault(event.pk, []).append(DOUBLE_COUNT_WARNING)
    for event, name, conversion, placeholder in placeholder_mismatches(offer, events):
        warnings.setdefault(event.pk, []).append(
            f"This URL has {name}={placeholder} but the offer's conversion URL has "
            f"{name}={conversion}: the advertiser's partner fills only one of them. Use the "
            "same preset for the offer (its parameter mapping above) and its events."
        )
    return warnings


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    form = OfferForm
    inlines = [OfferCapInline]
    list_display = [
        "name",
        "id",
        "advertiser",
        "status",
        "currency",
        "revenue",
        "payout",
        "event_count",
    ]
    list_filter = ["status", "currency", "advertiser"]
    list_select_related = ["advertiser"]
    search_fields = ["name", "id__exact", "advertiser__name"]
    autocomplete_fields = ["advertiser"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (
            "Offer",
            {
                "fields": ["name", "advertiser", "status", "destination_url", "currency"],
                "classes": ["ct-tab-general"],
            },
        ),
        (
            "Conversion: revenue and payout",
            {
                "fields": [("revenue_type", "revenue_value"), ("payout_type", "payout_value")],
                "classes": ["ct-tab-revenue-payout"],
                "description": "What the advertiser pays the network (revenue) and the network "
                "pays the publisher (payout) for the conversion: the first postback of a click.",
            },
        ),
        (
            "Offer postback URL parameters",
            {"fields": ["parameters"], "classes": ["ct-tab-revenue-payout"]},
        ),
        (
            "Conversion rules",
            {
                "fields": ["conversion_window_days", "min_conversion_seconds", "fallback_url"],
                "classes": ["ct-tab-rules"],
                "description": "A conversion for a click older than the window is refused "
                "(422 click_expired); one sooner than the minimum after its click is recorded "
                "rejected (too_fast). While a hard cap is full, clicks go to the fallback URL. "
                "The caps are edited below the tabs.",
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["ct-tab-general"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Offer]:
        # Meta.ordering does not apply to aggregating queries: order explicitly for paging.
        return super().get_queryset(request).annotate(event_count=Count("events")).order_by("-id")

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: Any, change: bool
    ) -> None:
        new_caps = [f.instance for f in formset.forms if f.instance.pk is None]
        if formset.model is OfferCap:
            # Caps removed are locked before they and their counters are deleted, as
            # offers.services does: a postback making a period's counter rows meanwhile
            # (tracking/caps.py) commits first, or then finds the cap gone.
            removed = [f.instance.pk for f in formset.deleted_forms if f.instance.pk]
            list(OfferCap.objects.select_for_update().filter(pk__in=removed).order_by("pk"))
        super().save_formset(request, form, formset, change)
        # A new cap's counter starts from the period's approved records (offers.caps).
        for cap in new_caps:
            if formset.model is OfferCap and cap.pk is not None:
                cap_created(cap)

    @admin.display(description="Revenue")
    def revenue(self, offer: Offer) -> str:
        return money_rule(offer.revenue_type, offer.revenue_value, offer.currency)

    @admin.display(description="Payout")
    def payout(self, offer: Offer) -> str:
        return money_rule(offer.payout_type, offer.payout_value, offer.currency)

    @admin.display(description="Events", ordering="event_count")
    def event_count(self, offer: Offer) -> int:
        return offer.event_count

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Offer | None = None,
    ) -> HttpResponse:
        context["offer_tabs"] = OFFER_TABS
        context["can_manage_events"] = request.user.has_perm("offers.add_event")
        context["can_test_postbacks"] = request.user.has_perm("offers.change_offer")
        if obj is not None and obj.pk:
            context.update(self._offer_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _offer_context(self, request: HttpRequest, offer: Offer) -> dict[str, Any]:
        advertiser = offer.advertiser
        events = list(Event.objects.filter(offer=offer).order_by("id"))
        warnings = url_warnings(offer, events)
        rows = [
            EventRow(
                event=event,
                revenue=money_rule(event.revenue_type, event.revenue_value, offer.currency),
                payout=money_rule(event.payout_type, event.payout_value, offer.currency),
                postback_url=shown_url(request, event_postback_url(event, offer=offer), advertiser),
                warnings=tuple(warnings.get(event.pk, ())),
                status_url=shown_url(request, event_status_url(event, offer=offer), advertiser),
            )
            for event in events
        ]
        highlight = request.GET.get("event", "")
        caps = list(OfferCap.objects.filter(offer=offer).select_related("publisher").order_by("pk"))
        usage = cap_usage(caps)
        return {
            "cap_rows": [{"cap": cap, "used": f"{usage[cap.pk]:.2f}"} for cap in caps],
            "offer_postback_url": shown_url(request, offer_postback_url(offer), advertiser),
            "conversion_status_url": shown_url(request, conversion_status_url(offer), advertiser),
            "offer_revenue": money_rule(offer.revenue_type, offer.revenue_value, offer.currency),
            "offer_payout": money_rule(offer.payout_type, offer.payout_value, offer.currency),
            "event_rows": rows,
            "highlight_event": highlight if highlight.isdigit() else "",
            "tracking_base_url": tracking_url(offer),
            "tracking_subs": TRACKING_SUBS,
            "publishers": Publisher.objects.order_by("name").only("id", "name")[:1000],
            "test_targets": [
                {"value": "conversion", "label": "Conversion (the first postback of a click)"},
                *[{"value": str(e.pk), "label": f"Event “{e.name}” (ID {e.pk})"} for e in events],
            ],
            "event_add_url": reverse("admin:offers_event_add") + f"?offer={offer.pk}",
        }

    def _with_tab(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Keep the tab that was open when "Save and continue editing" comes back."""
        tab = request.POST.get("_tab", "")
        if (
            "_continue" in request.POST
            and tab in TAB_ANCHORS
            and isinstance(response, HttpResponseRedirect)
        ):
            response["Location"] = response["Location"].split("#")[0] + f"#{tab}"
        return response

    def response_add(
        self, request: HttpRequest, obj: Offer, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._with_tab(request, super().response_add(request, obj, post_url_continue))

    def response_change(self, request: HttpRequest, obj: Offer) -> HttpResponse:
        return self._with_tab(request, super().response_change(request, obj))


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events are defined from their offer's Revenue & Payout tab and return to it."""

    form = EventForm
    list_display = ["name", "id", "offer", "revenue", "payout", "allow_multiple_display"]
    list_filter = ["allow_multiple", "offer__advertiser"]
    list_select_related = ["offer"]
    search_fields = ["name", "id__exact", "offer__name"]
    autocomplete_fields = ["offer"]

    @admin.display(description="Revenue")
    def revenue(self, event: Event) -> str:
        return money_rule(event.revenue_type, event.revenue_value, event.offer.currency)

    @admin.display(description="Allow multiple", ordering="allow_multiple")
    def allow_multiple_display(self, event: Event) -> str:
        """Yes/no (the field's whole label is on hover), and a warning when every resend
        would be counted again."""
        shown = format_html(
            '<span title="Allow multiple events with the same click ID">{}</span>',
            "Yes" if event.allow_multiple else "No",
        )
        if double_counts(event, event.offer):
            return format_html(
                '{} <span class="ct-warning-badge" title="{}">no adv_sub: resends count</span>',
                shown,
                DOUBLE_COUNT_WARNING,
            )
        return shown

    @admin.display(description="Payout")
    def payout(self, event: Event) -> str:
        return money_rule(event.payout_type, event.payout_value, event.offer.currency)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "wait_for_conversion_minutes":
            # Left empty (or absent from an older form): 0, do not wait.
            return ZeroIfEmptyField(
                min_value=0,
                max_value=1440,
                required=False,
                label=db_field.verbose_name.capitalize(),
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_actions(self, request: HttpRequest) -> dict:
        # The bulk delete would bypass event_delete (and list every protected record).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _offer_from_request(self, request: HttpRequest) -> Offer | None:
        offer_id = request.GET.get("offer", "")
        if not offer_id.isdigit():
            return None
        return Offer.objects.select_related("advertiser").filter(pk=offer_id).first()

    def get_fields(self, request: HttpRequest, obj: Event | None = None) -> list[str]:
        if obj is None and self._offer_from_request(request) is None:
            # Opened from the Events list rather than an offer: ask which offer first.
            return ["offer", *EVENT_FIELDS]
        if obj is not None:
            # Defining an event asks exactly the spec's fields; its page adds the rules.
            return [*EVENT_FIELDS, *EVENT_RULE_FIELDS]
        return EVENT_FIELDS

    def get_form(
        self, request: HttpRequest, obj: Event | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm]:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        offer = self._offer_from_request(request) if obj is None else None
        if offer is None:
            return form_class

        class EventOfOfferForm(form_class):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.instance.offer = offer
                self.inherit_from(offer)

        return EventOfOfferForm

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Event | None = None,
    ) -> HttpResponse:
        offer = obj.offer if obj is not None else self._offer_from_request(request)
        context["event_offer"] = offer
        if offer is not None:
            context["offer_tab_url"] = self._offer_tab_url(offer)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Event:
        fields = {name: form.cleaned_data[name] for name in EVENT_FIELDS}
        if change:
            return form.save(commit=False)
        offer = form.instance.offer if form.instance.offer_id else form.cleaned_data["offer"]
        return event_create(offer=offer, **fields)

    def save_model(self, request: HttpRequest, obj: Event, form: ModelForm, change: bool) -> None:
        if change:
            names = [
                name for name in (*EVENT_FIELDS, *EVENT_RULE_FIELDS) if name in form.cleaned_data
            ]
            event_update(event=obj, **{name: form.cleaned_data[name] for name in names})
        # Additions were made by event_create in save_form.
        if double_counts(obj, obj.offer):
            self.message_user(request, f"“{obj.name}”: {DOUBLE_COUNT_WARNING}", messages.WARNING)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list, change: bool
    ) -> None:
        # An event made by the service has no form-held relations left to save.
        if change:
            super().save_related(request, form, formsets, change)

    def _offer_tab_url(self, offer: Offer, event: Event | None = None) -> str:
        url = reverse("admin:offers_offer_change", args=[offer.pk])
        if event is not None:
            url += f"?event={event.pk}"
        return url + "#revenue-payout"

    def _back_to_offer(self, request: HttpRequest, obj: Event, verb: str) -> HttpResponse | None:
        if "_continue" in request.POST or "_addanother" in request.POST:
            return None
        if admin.options.IS_POPUP_VAR in request.POST:
            return None
        self.message_user(
            request,
            f"The event “{obj.name}” (event ID {obj.pk}) was {verb}. Its postback URL is in "
            "the events table below.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._offer_tab_url(obj.offer, obj))

    def response_add(
        self, request: HttpRequest, obj: Event, post_url_continue: str | None = None
    ) -> HttpResponse:
        back = self._back_to_offer(request, obj, "created")
        if back is not None:
            return back
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" in request.POST and isinstance(response, HttpResponseRedirect):
            response["Location"] = reverse("admin:offers_event_add") + f"?offer={obj.offer_id}"
        return response

    def response_change(self, request: HttpRequest, obj: Event) -> HttpResponse:
        back = self._back_to_offer(request, obj, "changed")
        if back is not None:
            return back
        response = super().response_change(request, obj)
        if "_addanother" in request.POST and isinstance(response, HttpResponseRedirect):
            response["Location"] = reverse("admin:offers_event_add") + f"?offer={obj.offer_id}"
        return response

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Confirm and delete through ``event_delete``; an event with records is refused.

        Django's own delete page would list every protected record (millions, for a busy
        event); this one says why the event cannot go and what to do instead.
        """
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404("No event has this ID.")
        if not self.has_delete_permission(request, event):
            raise PermissionDenied
        back_url = self._offer_tab_url(event.offer)
        if request.method == "POST":
            try:
                with transaction.atomic():
                    self.log_deletions(request, Event.objects.filter(pk=event.pk))
                    event_delete(event=event)
            except EventHasRecords as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(back_url)
            self.message_user(request, f"The event “{event.name}” was deleted.", messages.SUCCESS)
            return HttpResponseRedirect(back_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "object": event,
            "original": event,
            "title": "Delete the event?",
            "has_records": event.records.exists(),
            "back_url": back_url,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/offers/event/delete_event.html", context)
