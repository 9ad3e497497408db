"""Tests: the same settings, faster hashing, DATABASE_URL picks SQLite or PostgreSQL."""

from .base import *  # noqa: F403

SECRET_KEY = "test-only-secret-key-not-used-anywhere-else"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# The tests' publisher servers listen on loopback (tests/tracking/test_outbound_ssrf.py turns
# it off again to see the refusals).
OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
