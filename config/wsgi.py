"""WSGI entry point: ``gunicorn -c config/gunicorn.py config.wsgi`` (or plain
``gunicorn config.wsgi``).

The tracking endpoints (``/postback``, ``/click``, ``/healthz``: ``config.hits.HIT_PATHS``)
are machine-to-machine hits that use no session, user, CSRF token or message: they go
through an application with only the middleware they need, which about doubles what one
worker serves (docs/benchmarks.md). Everything else (the admin, the API, the root) goes
through Django's full stack.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

full_application = get_wsgi_application()

from config.hits import HIT_PATHS, HitApplication  # noqa: E402  (needs Django set up)

hit_application = HitApplication()


def application(environ: dict, start_response):  # noqa: ANN201
    if environ.get("PATH_INFO") in HIT_PATHS:
        return hit_application(environ, start_response)
    return full_application(environ, start_response)
