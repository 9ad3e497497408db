"""The public hit endpoints: thin function views that parse, call one service, answer."""

from django.db import DatabaseError, connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotFound,
    HttpResponseRedirect,
    JsonResponse,
)
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from tracking.http import client_ip, header
from tracking.services import SUB_FIELDS, ClickRefused, click_record

SUB_VALUE_LIMIT = 255


def _positive_int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 else None


def _plain_404(message: str) -> HttpResponse:
    return HttpResponseNotFound(message + "\n", content_type="text/plain; charset=utf-8")


@csrf_exempt
@never_cache
@require_GET
def click(request: HttpRequest) -> HttpResponse:
    """``GET /click?offer_id=…&aff_id=…``: record a click and redirect to the offer."""
    offer_id = _positive_int(request.GET.get("offer_id"))
    publisher_id = _positive_int(request.GET.get("aff_id"))
    if offer_id is None:
        return _plain_404("Unknown offer: offer_id must be the numeric ID of an active offer.")
    if publisher_id is None:
        return _plain_404("Unknown publisher: aff_id must be the numeric ID of a publisher.")
    subs = {
        field: "".join(ch for ch in request.GET.get(field, "") if ch.isprintable())[
            :SUB_VALUE_LIMIT
        ]
        for field in SUB_FIELDS
    }
    try:
        result = click_record(
            offer_id=offer_id,
            publisher_id=publisher_id,
            subs=subs,
            ip=client_ip(request),
            user_agent=header(request, "HTTP_USER_AGENT", 512),
            referrer=header(request, "HTTP_REFERER", 2048),
        )
    except ClickRefused as exc:
        return _plain_404(str(exc))
    return HttpResponseRedirect(result.redirect_url)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """``200`` when the application and its database answer, ``503`` otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
