"""The offer page's Test postback tab, server side (JSON in, JSON out).

It lives in ``tracking`` because it makes clicks and runs the postback rules; ``offers``
never imports ``tracking``. The URL tested is the generated postback URL of
offers.postback_urls with its placeholders replaced, as the advertiser's system would, and
the decision comes from ``postback_process``: the same code as the public endpoint.
"""

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from offers.models import Event, Offer, Publisher
from offers.postback_urls import event_postback_url, offer_postback_url
from tracking.http import client_ip, header
from tracking.models import Click
from tracking.postback import postback_process
from tracking.services import ClickRefused, click_record

TEST_PUBLISHER_NAME = "Test publisher"
TEST_USER_AGENT = "Clicktrail admin test postback"
#: The values the tab lets the user fill in, besides transaction_id.
TEST_VALUES = ("amount", "currency", "adv_sub")
VALUE_LIMIT = 255


class BadInput(Exception):
    """The tab sent something it should not; answered with 400 and the message."""


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("The request body must be a JSON object.") from exc
    if not isinstance(data, dict):
        raise BadInput("The request body must be a JSON object.")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadInput(f"“{name}” must be text.")
    return str(value).strip()


def fill_placeholders(url: str, values: dict[str, str]) -> str:
    """What the advertiser's system does with a generated URL: replace its placeholders.

    Each parameter named in ``values`` gets that value (URL-encoded), or is left out when
    the value is empty; a value for a parameter the URL does not carry is appended.
    Everything else (``secure``, ``offer_id``, ``event_id``, ``event_name``) stays as
    generated.
    """
    parts = urlsplit(url)
    pairs = [item.partition("=") for item in parts.query.split("&") if item]
    query = []
    for name, _, raw in pairs:
        if name not in values:
            query.append(f"{name}={raw}")
        elif values[name]:
            query.append(f"{name}={quote(values[name], safe='')}")
    carried = {name for name, _, _ in pairs}
    query += [
        f"{name}={quote(value, safe='')}"
        for name, value in values.items()
        if value and name not in carried
    ]
    return parts._replace(query="&".join(query)).geturl()


def _admin_link(name: str, pk: int | None) -> str:
    if pk is None:
        return ""
    try:
        return reverse(f"admin:{name}", args=[pk])
    except NoReverseMatch:
        return ""


def _offer_for(request: HttpRequest, offer_id: int) -> Offer | JsonResponse:
    if not request.user.has_perm("offers.change_offer"):
        return _error("Testing postbacks is for account managers.", 403)
    offer = Offer.objects.select_related("advertiser").filter(pk=offer_id).first()
    if offer is None:
        return _error(f"No offer has ID {offer_id}.", 404)
    return offer


@never_cache
@require_POST
def test_click(request: HttpRequest, offer_id: int) -> JsonResponse:
    """Make a test click on the offer: ``{"publisher_id": ""|id}`` → its ``transaction_id``.

    Without a publisher the click goes to the publisher named "Test publisher", created
    the first time it is needed.
    """
    offer = _offer_for(request, offer_id)
    if isinstance(offer, JsonResponse):
        return offer
    try:
        publisher_id = _text(_json_body(request), "publisher_id")
    except BadInput as exc:
        return _error(str(exc), 400)
    if publisher_id:
        if not publisher_id.isdigit():
            return _error("publisher_id must be a publisher's numeric ID.", 400)
        publisher = Publisher.objects.filter(pk=int(publisher_id)).first()
        if publisher is None:
            return _error(f"No publisher has ID {publisher_id}.", 404)
    else:
        publisher, _ = Publisher.objects.get_or_create(name=TEST_PUBLISHER_NAME)
    try:
        result = click_record(
            offer_id=offer.pk,
            publisher_id=publisher.pk,
            subs={"source": "admin-test"},
            ip=client_ip(request),
            user_agent=header(request, "HTTP_USER_AGENT", 512),
            referrer="",
            is_test=True,
        )
    except ClickRefused as exc:
        return _error(str(exc), 409)
    return JsonResponse(
        {
            "transaction_id": result.transaction_id,
            "click_id": result.click_id,
            "publisher": {"id": publisher.pk, "name": publisher.name},
            "admin_url": _admin_link("tracking_click_change", result.click_id),
        },
        status=201,
    )


@never_cache
@require_POST
def test_postback(request: HttpRequest, offer_id: int) -> JsonResponse:
    """Dry-run or fire the offer's conversion or event postback URL for a click.

    In: ``{"target": "conversion"|"<event id>", "transaction_id": …, "amount": …,
    "currency": …, "adv_sub": …, "dry_run": true|false}``. Out: the exact URL, the HTTP
    status and body the endpoint would answer (or answered), and links to what it wrote.
    Firing for real is refused for a click that is not a test click: a real conversion
    for real traffic must come from the advertiser.
    """
    offer = _offer_for(request, offer_id)
    if isinstance(offer, JsonResponse):
        return offer
    try:
        data = _json_body(request)
        target = _text(data, "target") or "conversion"
        transaction_id = _text(data, "transaction_id")
        values = {name: _text(data, name) for name in TEST_VALUES}
        dry_run = data.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise BadInput("dry_run must be true or false.")
        if any(len(value) > VALUE_LIMIT for value in [transaction_id, *values.values()]):
            raise BadInput(f"Values are at most {VALUE_LIMIT} characters.")
    except BadInput as exc:
        return _error(str(exc), 400)
    if not transaction_id:
        return _error("Make a test click or paste a transaction_id first.", 400)

    if target == "conversion":
        generated = offer_postback_url(offer)
    else:
        event = (
            Event.objects.filter(offer=offer, pk=int(target)).first() if target.isdigit() else None
        )
        if event is None:
            return _error("Choose the conversion or one of this offer's events.", 400)
        generated = event_postback_url(event, offer=offer)

    if not dry_run:
        click = Click.objects.filter(transaction_id=transaction_id).only("is_test").first()
        if click is not None and not click.is_test:
            return _error(
                "Firing for real is only for test clicks made here; this is a real click. "
                "Use the dry run to see what its postback would get.",
                409,
            )

    url = fill_placeholders(generated, {"transaction_id": transaction_id, **values})
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    outcome = postback_process(
        params=params,
        method="GET",
        ip=client_ip(request),
        user_agent=TEST_USER_AGENT,
        dry_run=dry_run,
        # The account manager's browser is not the advertiser's server (docs/postbacks.md
        # check 3a); the tab says when the advertiser has an allow-list.
        check_allow_list=False,
    )
    record_link = ""
    if outcome.record_id is not None:
        name = "tracking_eventrecord_change" if outcome.is_event else "tracking_conversion_change"
        record_link = _admin_link(name, outcome.record_id)
    return JsonResponse(
        {
            "url": url,
            "dry_run": dry_run,
            "status_code": outcome.status_code,
            "reason": outcome.reason,
            "body": outcome.body,
            "record_url": record_link,
            "log_url": _admin_link("tracking_postbacklog_change", outcome.log_id),
        }
    )


test_click_view = admin.site.admin_view(test_click)
test_postback_view = admin.site.admin_view(test_postback)
