"""A lean WSGI handler for the tracking endpoints (see config/wsgi.py)."""

import functools
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse

#: Each path served by ``HitWSGIHandler`` and the view (in ``tracking.views``) that answers
#: it: the same views ``tracking.urls`` routes to. The site root also takes postbacks, but
#: it is shared with people opening the site, so it keeps the full stack.
HIT_VIEW_NAMES = {
    "/postback": "postback",
    "/postback/": "postback",
    "/click": "click",
    "/healthz": "healthz",
}
HIT_PATHS = frozenset(HIT_VIEW_NAMES)

#: What a hit needs: security headers (and HTTPS redirects where configured) and the
#: ALLOWED_HOSTS check. No sessions, authentication, CSRF (the views are csrf_exempt),
#: messages, clickjacking headers (they answer JSON or a redirect), static files, or the
#: common middleware (its slash-appending resolves the URL again for every 404 answer,
#: i.e. every unknown transaction_id).
HIT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.hits.AllowedHostsMiddleware",
]


class AllowedHostsMiddleware:
    """Refuse a Host outside ALLOWED_HOSTS with ``400``, as the full stack does."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.get_host()  # raises DisallowedHost, which Django answers with 400
        return self.get_response(request)


class HitWSGIHandler(WSGIHandler):
    """Django's WSGI handler with ``HIT_MIDDLEWARE`` instead of ``settings.MIDDLEWARE``, and
    the view found by its exact path.

    Everything else is Django's: the request and response objects, the signals around each
    request (connection upkeep), the middleware chain and its conversion of exceptions into
    answers. What is skipped is what a hit never needs: resolving the path against every
    pattern of the site (``config.urls``), view middleware (none here) and wrapping the view
    in a request transaction (the hit views are ``non_atomic_requests`` or read-only).
    """

    def _get_response(self, request: HttpRequest) -> HttpResponse:
        # Only HIT_PATHS reach this handler (config/wsgi.py).
        return hit_views()[request.path_info](request)

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        try:
            settings.MIDDLEWARE = HIT_MIDDLEWARE
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured


@functools.cache
def hit_views() -> dict[str, Callable[[HttpRequest], HttpResponse]]:
    """The view of each hit path (``HIT_VIEW_NAMES``), imported on first use."""
    from tracking import views

    return {path: getattr(views, name) for path, name in HIT_VIEW_NAMES.items()}
