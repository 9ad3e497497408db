"""Development: the embedded SQLite database unless DATABASE_URL says otherwise."""

from config.env import env

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)
# A development-only fallback; production refuses to start without a real SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-local-development-only-key")  # noqa: S105
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG
