"""Small request helpers shared by the tracking endpoints."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


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
