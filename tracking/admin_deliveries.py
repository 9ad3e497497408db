"""The delivery log in the admin, and the publisher postback Test button's view.

SPEC "Publisher postbacks (outbound)": every delivery with its attempts; filters by
publisher, offer, outcome and date; exact search by ``transaction_id`` (or a delivery's
ID); a **Resend** action for account managers. Stored URLs are shown with their secrets
masked (offers.outbound_urls.mask_url); the whole URL never reaches a page.
"""

import asyncio
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from offers.models import Offer, PublisherPostback
from offers.outbound_urls import mask_url
from tracking.admin import CappedPaginator, PeriodFilter
from tracking.deliveries import DeliveryPending, delivery_resend, sample_delivery_url
from tracking.models import Delivery, DeliveryAttempt
from tracking.outbound import Lane, send


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["at", "masked_url", "status_code", "duration_ms", "response", "error"]
    readonly_fields = fields
    ordering = ["at", "id"]

    @admin.display(description="URL sent")
    def masked_url(self, attempt: DeliveryAttempt) -> str:
        return attempt.url  # stored masked

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    sortable_by = ["created_at"]
    list_display = [
        "id",
        "created_at",
        "publisher",
        "offer",
        "trigger",
        "record",
        "transaction_id",
        "outcome_display",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
    ]
    list_select_related = ["publisher", "offer"]
    list_filter = [PeriodFilter, "outcome", "trigger", "publisher", "offer"]
    search_fields = ["transaction_id"]
    search_help_text = "Exact transaction_id, or a delivery's ID."
    actions = ["resend"]
    inlines = [DeliveryAttemptInline]
    fields = [
        "id",
        "created_at",
        "postback",
        "publisher",
        "offer",
        "trigger",
        "record",
        "transaction_id",
        "masked_url",
        "outcome",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "finished_at",
    ]
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(transaction_id=term)  # serves: delivery_transaction_id
        if term.isdigit() and len(term) < 19:
            condition |= Q(pk=int(term))
        return queryset.filter(condition), False

    @admin.display(description="outcome", ordering="outcome")
    def outcome_display(self, delivery: Delivery) -> str:
        return format_html(
            '<span class="ct-delivery ct-delivery-{}">{}</span>', delivery.outcome, delivery.outcome
        )

    @admin.display(description="record")
    def record(self, delivery: Delivery) -> str:
        if delivery.record_type == Delivery.RecordType.EVENT:
            url = reverse("admin:tracking_eventrecord_change", args=[delivery.event_record_id])
            return format_html('<a href="{}">event record #{}</a>', url, delivery.event_record_id)
        url = reverse("admin:tracking_conversion_change", args=[delivery.conversion_id])
        return format_html('<a href="{}">conversion #{}</a>', url, delivery.conversion_id)

    @admin.display(description="URL")
    def masked_url(self, delivery: Delivery) -> str:
        return mask_url(delivery.url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tracking.resend_delivery")

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet) -> None:
        resent, pending = 0, 0
        for delivery_id in queryset.values_list("pk", flat=True)[:1000]:
            try:
                delivery_resend(delivery_id=delivery_id)
                resent += 1
            except DeliveryPending:
                pending += 1
        self.message_user(request, f"{resent} deliveries queued again.", messages.SUCCESS)
        if pending:
            self.message_user(
                request,
                f"{pending} were still queued or retrying and were left as they are.",
                messages.WARNING,
            )


@staff_member_required
@require_POST
def publisher_postback_test_view(request: HttpRequest, postback_id: int) -> HttpResponse:
    """The publisher page's Test button: one request for a test record, now, through the
    same safe sender as the worker; the answer is shown and nothing is recorded."""
    if not request.user.has_perm("offers.change_publisherpostback"):
        raise PermissionDenied
    postback = get_object_or_404(
        PublisherPostback.objects.select_related("publisher"), pk=postback_id
    )
    offer = postback.offer or Offer.objects.order_by("-id").first()
    url = sample_delivery_url(postback=postback, offer=offer, now=timezone.now())

    async def attempt() -> Any:
        async with Lane() as lane:
            return await send(lane, url)

    result = asyncio.run(attempt())
    context = {
        **admin.site.each_context(request),
        "title": f"Test of {postback}",
        "postback": postback,
        "url": mask_url(url),
        "result": result,
        "delivered": result.status_code is not None and 200 <= result.status_code < 300,
        "back": reverse("admin:offers_publisher_change", args=[postback.publisher_id]),
    }
    return TemplateResponse(request, "admin/offers/publisher/test_postback.html", context)
