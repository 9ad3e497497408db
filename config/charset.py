"""Refuse requests that declare a charset Python cannot read text in, before anything reads
them.

Django takes the ``charset`` of any request's Content-Type as the encoding of its query
string and form body if ``codecs.lookup`` knows the name, and ``rot13``, ``base64`` or
``utf-16`` are known names: reading ``request.GET`` or ``request.POST`` (the CSRF check on the
admin login does) then fails with a 500. This answers such requests ``400`` instead, the
API's in its JSON shape. Views that decode their requests themselves (the tracking endpoints,
``tracking.http.decodes_own_request``) answer in their own way and are left alone.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from tracking.http import text_charset


class DeclaredCharsetMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple, kwargs: dict
    ) -> HttpResponse | None:
        declared = request.content_params.get("charset")
        if declared is None or getattr(view, "decodes_own_request", False):
            return None
        if text_charset(declared.strip().lower()[:40]) is not None:
            return None
        message = (
            f"The request's charset {declared[:40]!r} is not a text encoding this server reads."
        )
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponseBadRequest(message + "\n", content_type="text/plain; charset=utf-8")
