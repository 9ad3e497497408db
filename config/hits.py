"""A lean WSGI handler for the tracking endpoints (see config/wsgi.py)."""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

#: Served by ``HitWSGIHandler``. The site root also takes postbacks, but it is shared with
#: people opening the site, so it keeps the full stack.
HIT_PATHS = frozenset({"/postback", "/postback/", "/click", "/healthz"})

#: What a hit needs: security headers (and HTTPS redirects where configured). No sessions,
#: authentication, CSRF (the views are csrf_exempt), messages, clickjacking headers (they
#: answer JSON or a redirect), static files, or the common middleware (its slash-appending
#: resolves the URL again for every 404 answer, i.e. every unknown transaction_id, and the
#: hits build no URL from the Host header, so there is nothing for its host check to guard).
HIT_MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]


class HitWSGIHandler(WSGIHandler):
    """Django's WSGI handler with ``HIT_MIDDLEWARE`` instead of ``settings.MIDDLEWARE``."""

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        try:
            settings.MIDDLEWARE = [m for m in HIT_MIDDLEWARE if m in configured]
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured
