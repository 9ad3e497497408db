"""Small request helpers shared by the tracking endpoints."""

import contextlib
import ipaddress
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest


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
            candidate = forwarded.split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def header(request: HttpRequest, name: str, limit: int) -> str:
    """A request header as text, cut to what its column holds."""
    return request.META.get(name, "")[:limit]
