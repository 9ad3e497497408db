"""Settings shared by every environment. Environments differ only by what ``env`` reads."""

from config.env import BASE_DIR, env

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Public address of /click and /postback, used to build the URLs given to advertisers.
TRACKING_BASE_URL = env("TRACKING_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Only behind a reverse proxy that sets it: otherwise a client could forge its own IP.
USE_X_FORWARDED_FOR = env.bool("USE_X_FORWARDED_FOR", default=False)
# Publisher postbacks may call loopback, private and reserved addresses (tests, a receiver
# on the LAN). Off in production: a postback URL must never reach the network's insides.
OUTBOUND_ALLOW_PRIVATE_NETWORKS = env.bool("OUTBOUND_ALLOW_PRIVATE_NETWORKS", default=False)

INSTALLED_APPS = [
    "config.apps.ClicktrailAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "offers",
    "tracking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: its check reads the form body in the declared charset.
    "config.charset.DeclaredCharsetMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_config(url: str) -> dict:
    """Turn DATABASE_URL into Django's DATABASES entry, tuned per engine.

    SQLite (the embedded default) must survive a few concurrent gunicorn workers: WAL lets
    readers run beside the writer, ``IMMEDIATE`` transactions take the write lock up front
    (so two writers queue instead of deadlocking on a lock upgrade), and the busy timeout
    makes a queued writer wait instead of failing with "database is locked".

    PostgreSQL keeps connections open between requests (a connect costs more than a
    postback) and checks them before reuse so a restarted server costs no failed request.
    """
    config = env.db_url_config(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA busy_timeout=20000;"
                "PRAGMA foreign_keys=ON;"
            ),
        }
    elif engine in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
        config["ENGINE"] = "django.db.backends.postgresql"
        config["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
        config["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("connect_timeout", 5)
        config["OPTIONS"].setdefault("application_name", "clicktrail")
        # The tracking path's few statements are prepared once per connection
        # (tracking/sql.py); Django's own queries never are (client-side binding). Switch
        # it off behind a PgBouncer in transaction mode older than 1.21.
        if env.bool("CONN_PREPARED_STATEMENTS", default=True):
            config["OPTIONS"].setdefault("prepare_threshold", 5)
    return config


DATABASE_URL = env("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": database_config(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.permissions.RolePermissions"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Clicktrail API",
    "DESCRIPTION": "Manage advertisers, publishers, offers and events; read what was recorded.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the sidecar package so the docs work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MoneyTypeEnum": "offers.models.MoneyType",
        "OfferStatusEnum": "offers.models.Offer.Status",
        "RecordStatusEnum": "tracking.models.RecordStatus",
        "StatusChangeSourceEnum": "tracking.models.StatusChange.Source",
    },
    # Every operation's error answers (config/schema.py), after the default enum hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.add_error_responses",
    ],
    # The API is JSON: request bodies are documented as JSON only (forms are still read,
    # for the browsable API).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # Request bodies get their own components, with what writing requires (minLength…).
    "COMPONENT_SPLIT_REQUEST": True,
}

# Retention (tracking/retention.py, `manage.py prune`). Postback log rows are kept at least
# this many days, then removed by whole UTC months (a dropped partition on PostgreSQL).
POSTBACK_LOG_RETENTION_DAYS = env.int("POSTBACK_LOG_RETENTION_DAYS", default=180)
# Clicks that never converted are kept this many days; conversions and event records and
# the clicks they reference are never removed. Default: the longest conversion window plus
# 30 days. Offers have no conversion window yet, so it is the planned default window (90
# days) + 30; once offers carry `conversion_window_days`, the longest of them + 30 becomes
# the floor prune applies whatever this says (tracking/retention.py, click_cutoff).
CONVERSION_WINDOW_DAYS_DEFAULT = 90
CLICK_RETENTION_DAYS = env.int("CLICK_RETENTION_DAYS", default=CONVERSION_WINDOW_DAYS_DEFAULT + 30)
# The publisher delivery log (deliveries and their attempts) is kept at least this many
# days, counted from the reported record's creation, then removed by the records' whole
# UTC months; a month with a delivery still queued or retrying waits until it ends.
DELIVERY_RETENTION_DAYS = env.int("DELIVERY_RETENTION_DAYS", default=180)
# Monthly partitions made ahead of time by `manage.py partitions` (PostgreSQL).
PARTITION_MONTHS_AHEAD = env.int("PARTITION_MONTHS_AHEAD", default=3)

# Covering indexes (Index.include) are PostgreSQL-only; SQLite builds them without the
# included columns, which is harmless there.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Tokens never reach a log whole: runserver logs whole request lines with their query.
    "filters": {
        "mask_secure": {"()": "config.logging.MaskSecureFilter"},
        "one_line_warning": {"()": "config.logging.OneLineWarning"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_secure"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A 4xx answer is expected traffic, not a server problem: every rejected postback is
        # recorded with its reason in the postback log, and a warning line per rejection
        # would flood the server log (and cost measurable time per request). 5xx are logged.
        "django.request": {"level": "ERROR"},
        # runserver's own handler would print request lines unfiltered; send them through ours.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # A Host outside ALLOWED_HOSTS is a client's mistake (or a scanner): one warning line
        # each, not an error with a ten-line traceback.
        "django.security.DisallowedHost": {"filters": ["one_line_warning"], "level": "WARNING"},
    },
}
