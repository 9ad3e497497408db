"""The public hit endpoints: thin function views that parse, call one service, answer."""

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotFound,
    HttpResponseRedirect,
    JsonResponse,
)
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_safe

from tracking.http import (
    BodyRefused,
    check_declared_size,
    client_ip,
    decodes_own_request,
    form_params,
    header,
    hit_never_cache,
    json_answer,
    query_params,
)
from tracking.models import Reason
from tracking.postback import postback_process, postback_unreadable
from tracking.rules import RecordKind
from tracking.services import SUB_FIELDS, ClickRefused, click_record
from tracking.status import status_postback_process

SUB_VALUE_LIMIT = 255


def _positive_int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 else None


def _printable_sub(value: str) -> str:
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value[:SUB_VALUE_LIMIT]


def _plain_404(message: str) -> HttpResponse:
    return HttpResponseNotFound(message + "\n", content_type="text/plain; charset=utf-8")


@decodes_own_request
@csrf_exempt
@hit_never_cache
@require_GET
def click(request: HttpRequest) -> HttpResponse:
    """``GET /click?offer_id=…&aff_id=…``: record a click and redirect to the offer."""
    try:
        query = query_params(request)
    except SuspiciousOperation:
        return HttpResponseBadRequest(
            "The tracking link's query string could not be read (too many parameters).\n",
            content_type="text/plain; charset=utf-8",
        )
    offer_id = _positive_int(query.get("offer_id"))
    publisher_id = _positive_int(query.get("aff_id"))
    if offer_id is None:
        return _plain_404("Unknown offer: offer_id must be the numeric ID of an active offer.")
    if publisher_id is None:
        return _plain_404("Unknown publisher: aff_id must be the numeric ID of a publisher.")
    subs = {field: _printable_sub(query.get(field, "")) for field in SUB_FIELDS}
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


@decodes_own_request
@hit_never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """``200`` when the application and its database answer, ``503`` otherwise (``GET`` or
    ``HEAD``: load balancers probe with either)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


POSTBACK_METHODS = ("GET", "POST")
RETRY_AFTER_SECONDS = 5


def _merged_params(request: HttpRequest) -> dict[str, str]:
    """The query string, then the form body over it (the body wins); a repeated name's last
    value wins. Raises ``BodyRefused`` or ``SuspiciousOperation`` (too many fields).

    The body is read here, not through ``request.POST``: Django refuses form bodies in any
    charset but UTF-8 (an HTML 400, or a 500 once CSRF reads the body), ignores chunked
    bodies and has no size limit of its own for a body streamed to a temporary file.
    """
    params = query_params(request)
    if request.method == "POST":
        params.update(form_params(request))
    else:
        check_declared_size(request)
    return params


def _query_if_readable(request: HttpRequest) -> dict[str, str]:
    """The query string's parameters for the log, when only the body was unreadable."""
    try:
        return query_params(request)
    except SuspiciousOperation:
        return {}


def _answer_postback(
    request: HttpRequest,
    read: "dict[str, str] | Exception | None" = None,
    process=postback_process,  # noqa: ANN001
    kind: RecordKind | None = None,
) -> HttpResponse:
    """Parse the request (unless ``read`` holds what reading it gave), run the postback
    service (``process``: /postback's or the status postback's) once, render its outcome as
    JSON."""
    if request.method not in POSTBACK_METHODS:
        response = json_answer(
            {
                "status": "rejected",
                "reason": "method_not_allowed",
                "message": "Send postbacks with GET or POST (form-encoded).",
            },
            status=405,
        )
        response["Allow"] = ", ".join(POSTBACK_METHODS)
        return response
    ip = client_ip(request)
    user_agent = header(request, "HTTP_USER_AGENT", 512)
    try:
        try:
            if read is None:
                read = _merged_params(request)
            if isinstance(read, Exception):
                raise read
            params = read
        except (SuspiciousOperation, BodyRefused) as exc:
            # Too many fields, a body over the limit, a refused charset, a broken multipart
            # body: still a postback request, so it is answered in JSON and logged.
            too_large = isinstance(exc, BodyRefused) and exc.too_large
            outcome = postback_unreadable(
                method=request.method,
                ip=ip,
                user_agent=user_agent,
                message=str(exc)[:500]
                if too_large
                else f"The request's parameters could not be read: {exc}"[:500],
                params=_query_if_readable(request),
                reason=Reason.REQUEST_TOO_LARGE if too_large else Reason.INVALID_PARAMETER,
                kind=kind,
            )
        else:
            outcome = process(params=params, method=request.method, ip=ip, user_agent=user_agent)
    except (OperationalError, InterfaceError):
        # The database is unreachable (down, restarting, out of connections). Nothing was
        # recorded; the advertiser's system retries.
        response = json_answer(
            {
                "status": "rejected",
                "reason": Reason.UNAVAILABLE.value,
                "message": "The tracking database is unavailable; nothing was recorded. "
                "Retry later.",
            },
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return json_answer(outcome.body, status=outcome.status_code)


# The service owns its transaction (record and log row together, the rejected log row
# outside a failed insert), so a request-wide transaction must never wrap it.
@decodes_own_request
@transaction.non_atomic_requests
@csrf_exempt
@hit_never_cache
def postback(request: HttpRequest) -> HttpResponse:
    """``GET``/``POST /postback``: a conversion or event from an advertiser (SPEC "Postback
    endpoint"). The rules live in ``tracking.postback``."""
    return _answer_postback(request)


@decodes_own_request
@transaction.non_atomic_requests
@csrf_exempt
@hit_never_cache
def postback_status(request: HttpRequest) -> HttpResponse:
    """``GET``/``POST /postback/status``: an advertiser approves or rejects what it reported
    (docs/postbacks.md "Approving and rejecting"). The rules live in ``tracking.status``."""
    return _answer_postback(request, process=status_postback_process, kind=RecordKind.STATUS)


@decodes_own_request
@transaction.non_atomic_requests
@csrf_exempt
@hit_never_cache
def root(request: HttpRequest) -> HttpResponse:
    """The site root: a postback when it carries ``transaction_id`` or ``secure`` (the form
    ``https://track.example.com/?secure=…&transaction_id=…``), else the way to the admin."""
    try:
        read: dict[str, str] | Exception = _merged_params(request)
    except (SuspiciousOperation, BodyRefused) as exc:
        # An unreadable request to the root is no visit to the admin: answer it as a postback.
        return _answer_postback(request, exc)
    if "transaction_id" in read or "secure" in read:
        return _answer_postback(request, read)
    return HttpResponseRedirect("/admin/")
