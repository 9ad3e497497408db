"""A lean WSGI application for the tracking endpoints (see config/wsgi.py).

Built from Django's public pieces only: ``WSGIRequest``, the request signals (so database
connections are looked after exactly as by Django's handler), the middleware classes by
``import_string``, each wrapped in ``convert_exception_to_response`` as Django wraps its own
chain. What it skips is what a hit never needs: resolving the path against every pattern of
the site (the view is found by its exact path), the full middleware list, view middleware
(none here) and a request transaction (the hit views are ``non_atomic_requests`` or
read-only).
"""

from collections.abc import Callable, Iterable

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import set_script_prefix, set_urlconf
from django.utils.log import log_response
from django.utils.module_loading import import_string

View = Callable[[HttpRequest], HttpResponse]

#: What a hit needs: security headers (and HTTPS redirects where configured) and the
#: ALLOWED_HOSTS check. No sessions, authentication, CSRF (the views are csrf_exempt),
#: messages, clickjacking headers (they answer JSON or a redirect), static files, or the
#: common middleware (its slash-appending resolves the URL again for every 404 answer,
#: i.e. every unknown transaction_id).
HIT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.hits.AllowedHostsMiddleware",
]


def hit_views() -> dict[str, View]:
    """Each hit path and its view: the patterns of ``tracking/urls.py`` (the one list of
    them), but the site root, which is shared with people opening the site and keeps the
    full stack."""
    from tracking.urls import urlpatterns

    return {
        f"/{pattern.pattern}": pattern.callback for pattern in urlpatterns if str(pattern.pattern)
    }


#: The paths ``HitApplication`` answers.
HIT_PATHS = frozenset(hit_views())


#: What ``HttpRequest.get_host`` reads of a request, for the hosts it has accepted.
_HOST_META = ("HTTP_X_FORWARDED_HOST", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT")
#: How many accepted hosts ``AllowedHostsMiddleware`` remembers (a site has a handful).
_ACCEPTED_HOSTS_LIMIT = 64
_accepted_hosts: set[tuple[str | None, ...]] = set()


@receiver(setting_changed)
def _forget_accepted_hosts(*, setting: str, **kwargs: object) -> None:
    if setting in ("ALLOWED_HOSTS", "DEBUG", "USE_X_FORWARDED_HOST"):
        _accepted_hosts.clear()


class AllowedHostsMiddleware:
    """Refuse a Host outside ALLOWED_HOSTS with ``400``, as the full stack does.

    Django checks the host again for every request (parsing it, matching it against every
    pattern); the few hosts a tracking server is reached by are remembered once Django has
    accepted them, by exactly what its check reads of the request, and forgotten when the
    settings it reads change. Any other host is checked, and refused, by Django each time.
    """

    def __init__(self, get_response: View) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        host = tuple(meta.get(name) for name in _HOST_META)
        if host not in _accepted_hosts:
            request.get_host()  # raises DisallowedHost, which Django answers with 400
            if len(_accepted_hosts) < _ACCEPTED_HOSTS_LIMIT:
                _accepted_hosts.add(host)
        return self.get_response(request)


class HitApplication:
    """A WSGI application for ``HIT_PATHS``: ``HIT_MIDDLEWARE`` around the view of the exact
    path, and around that what Django's WSGI handler does for every request."""

    def __init__(self) -> None:
        self.views = hit_views()
        chain: View = convert_exception_to_response(self.dispatch)
        for path in reversed(HIT_MIDDLEWARE):
            chain = convert_exception_to_response(import_string(path)(chain))
        self.chain = chain

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        # Only HIT_PATHS reach this application (config/wsgi.py).
        return self.views[request.path_info](request)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        set_script_prefix(get_script_name(environ))
        # Django's connection upkeep (CONN_MAX_AGE, health checks) listens to these two;
        # request_finished is sent when the server closes the response.
        signals.request_started.send(sender=self.__class__, environ=environ)
        set_urlconf(settings.ROOT_URLCONF)
        request = WSGIRequest(environ)
        try:
            response = self.chain(request)
        finally:
            # The hit answers are small and whole: nothing reads the request after this
            # (closes uploaded files of a multipart body).
            request.close()
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        headers = [
            *response.items(),
            *(("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()),
        ]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response
