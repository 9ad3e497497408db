"""Production: everything from the environment; secure by default."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env

from .base import *  # noqa: F403
from .base import SECRET_KEY

if not SECRET_KEY or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random string of 50+ characters.")

DEBUG = env.bool("DEBUG", default=False)

# TLS is normally terminated by a proxy in front of gunicorn that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Postbacks and clicks arrive over plain HTTP from some partners; redirecting a POST to
# HTTPS would lose its body, so the tracking endpoints are never redirected.
SECURE_REDIRECT_EXEMPT = [r"^postback/?$", r"^click$", r"^healthz$", r"^$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
