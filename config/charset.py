"""Requests that declare a charset Python cannot read text in: answered, never a 500.

Django takes the ``charset`` of any request's Content-Type as the encoding of its query
string and form body when ``codecs.lookup`` knows the name, and ``rot13``, ``base64`` or
``hex`` are known names, of codecs that are no text encoding at all: building the request
object then fails (it decodes the query string with it) and the server answers 500 with a
traceback in its log. Two layers keep that from happening:

- ``set_aside_refused_charset`` (called by config/wsgi.py for every request, before Django
  builds the request) moves such a charset out of CONTENT_TYPE into
  ``environ[REFUSED_CHARSET]``, so Django reads the request as UTF-8 and the views can still
  refuse the body by what it declared;
- ``DeclaredCharsetMiddleware`` answers ``400`` (the API's in its JSON shape) to a request
  that declared a charset this server does not read, before any view or the CSRF check reads
  its body. Views that decode their requests themselves (the tracking endpoints,
  ``tracking.http.decodes_own_request``) answer in their own way (a logged postback answer)
  and are left alone.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.http import parse_header_parameters

from tracking.http import REFUSED_CHARSET, text_charset


def set_aside_refused_charset(environ: dict) -> None:
    """Take a charset that is no ASCII-compatible text encoding out of CONTENT_TYPE, keeping
    it in ``environ[REFUSED_CHARSET]``."""
    content_type = environ.get("CONTENT_TYPE", "")
    if "charset" not in content_type.lower():
        return
    main, params = parse_header_parameters(content_type)
    declared = params.pop("charset", None)
    if declared is None or text_charset(declared.strip().lower()[:40]) is not None:
        return
    environ[REFUSED_CHARSET] = declared[:40] or "''"
    environ["CONTENT_TYPE"] = "; ".join(
        [main, *(f'{name}="{value}"' for name, value in params.items())]
    )


def _refused_charset(request: HttpRequest) -> str | None:
    refused = request.META.get(REFUSED_CHARSET)
    if refused is not None:
        return refused
    declared = request.content_params.get("charset")
    if declared is None or text_charset(declared.strip().lower()[:40]) is not None:
        return None
    return declared[:40]


class DeclaredCharsetMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple, kwargs: dict
    ) -> HttpResponse | None:
        if getattr(view, "decodes_own_request", False):
            return None
        refused = _refused_charset(request)
        if refused is None:
            return None
        message = f"The request's charset {refused!r} is not a text encoding this server reads."
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponseBadRequest(message + "\n", content_type="text/plain; charset=utf-8")
