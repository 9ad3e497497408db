"""Small request helpers shared by the tracking endpoints."""

import contextlib
import functools
import ipaddress
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

#: What Django's ``never_cache`` writes (``add_never_cache_headers``), with Expires: now.
NEVER_CACHE_CONTROL = "max-age=0, no-cache, no-store, must-revalidate, private"


def hit_never_cache(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's ``@never_cache`` for the hit views: the same headers, set directly.

    ``never_cache`` merges its directives into whatever Cache-Control the response already
    has, parsing and rebuilding the header twice; the hit views set none, so the result is
    always the same string, and setting it costs a fraction (measured: about 6 % of a
    click's CPU). tests/tracking/test_hit_headers.py holds the two to the same headers.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        headers = response.headers
        headers["Expires"] = _http_date_of(int(time.time()))
        headers["Cache-Control"] = NEVER_CACHE_CONTROL
        return response

    return wrapped


@functools.lru_cache(maxsize=2)
def _http_date_of(second: int) -> str:
    return http_date(second)


def query_params(request: HttpRequest) -> dict[str, str]:
    """The query string's parameters, a repeated name's last value winning.

    Decoded as ``request.GET`` would be (UTF-8, undecodable bytes replaced, at most
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields, else ``TooManyFieldsSent``) without building
    a QueryDict: the hit endpoints read a handful of names once.
    """
    raw = request.META.get("QUERY_STRING", "")
    if not raw:
        return {}
    # WSGI hands over the bytes as latin-1; the query is UTF-8 (else, as QueryDict does,
    # it is read as latin-1).
    with contextlib.suppress(UnicodeError):
        raw = raw.encode("iso-8859-1").decode("utf-8")
    try:
        pairs = parse_qsl(
            raw,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except ValueError as exc:
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from exc
    return dict(pairs)


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP: REMOTE_ADDR, or the proxy's X-Forwarded-For when configured.

    X-Forwarded-For is only trusted with USE_X_FORWARDED_FOR (behind a proxy that sets it);
    otherwise anyone could write any address into the logs.
    """
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The right-most entry: the one the trusted proxy wrote. Those left of it are
            # whatever the client sent, and an IP allow-list (docs/postbacks.md check 3a)
            # must not be passed by writing an allowed address into the header.
            candidate = forwarded.rsplit(",", 1)[-1].strip()
    return _normalised_ip(candidate[:64])


# The same few addresses (advertisers' servers, a proxy) send most hits: parsing one costs
# more than looking it up.
@functools.lru_cache(maxsize=4096)
def _normalised_ip(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def header(request: HttpRequest, name: str, limit: int) -> str:
    """A request header as text, cut to what its column holds."""
    return request.META.get(name, "")[:limit]
