"""gunicorn configuration: ``gunicorn -c config/gunicorn.py config.wsgi``.

Every value can be overridden from the environment (GUNICORN_WORKERS, …). The defaults
are chosen by measurement on a 2-core machine; see docs/benchmarks.md.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync" if threads == 1 else "gthread")
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# gunicorn's C request parser (the gunicorn_h1c package, picohttpparser) instead of its
# pure-Python one: about 15-30 µs less CPU per request here (docs/benchmarks.md). "fast"
# refuses to start without it rather than falling back silently; "python" is the fallback.
http_parser = os.environ.get("GUNICORN_HTTP_PARSER", "fast")
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100_000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 10_000))
# The postback log in the database records every request, masked, and in production nginx
# writes the access log (deploy/nginx/clicktrail.conf), so gunicorn's is off unless asked
# for (GUNICORN_ACCESSLOG=- or a path). Both of gunicorn's logs go through the masking
# filter: a malformed request line is logged whole, `secure=` and all.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
logger_class = "config.logging.MaskingGunicornLogger"


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's Worker
    """Load every advertiser's token once per worker, so the log filter masks them by value
    from the first line on (it never queries by itself: tracking.masking)."""
    from django.db import DatabaseError, close_old_connections

    from tracking.masking import token_mask

    try:
        token_mask(fresh=True)
    except DatabaseError as exc:
        # The worker still serves (and answers 503 while the database is down); the log
        # filter masks by parameter name until the first postback loads the tokens.
        worker.log.warning("Could not load the postback tokens for log masking: %s", exc)
    finally:
        close_old_connections()
