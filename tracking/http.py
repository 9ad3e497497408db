"""Small request helpers shared by the tracking endpoints."""

import codecs
import contextlib
import functools
import ipaddress
import json
import time
from collections.abc import Callable
from io import BytesIO
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.http import http_date

#: The largest request body a hit endpoint reads (SPEC: over 64 KiB answers 413). A postback
#: carries a few hundred bytes; anything near this is no partner's request.
BODY_LIMIT = 64 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MULTIPART_CONTENT_TYPE = "multipart/form-data"

#: What Django's ``never_cache`` writes (``add_never_cache_headers``), with Expires: now.
NEVER_CACHE_CONTROL = "max-age=0, no-cache, no-store, must-revalidate, private"


def hit_never_cache(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's ``@never_cache`` for the hit views: the same headers, set directly.

    ``never_cache`` merges its directives into whatever Cache-Control the response already
    has, parsing and rebuilding the header twice; the hit views set none, so the result is
    always the same string, and setting it costs a fraction (measured: about 6 % of a
    click's CPU). tests/tracking/test_hit_headers.py holds the two to the same headers.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        headers = response.headers
        headers["Expires"] = _http_date_of(int(time.time()))
        headers["Cache-Control"] = NEVER_CACHE_CONTROL
        return response

    return wrapped


def json_answer(body: dict, *, status: int = 200) -> HttpResponse:
    """``JsonResponse(body, status=status)`` for a postback's answer, which holds only JSON's
    own types: the same bytes and headers, without a ``DjangoJSONEncoder`` made for every
    answer and the charset looked up in the Content-Type and the settings as the body is
    encoded (together ~5 % of an accepted postback's time in Python, sampled with py-spy:
    docs/benchmarks.md)."""
    return HttpResponse(
        json.dumps(body), content_type="application/json", charset="utf-8", status=status
    )


@functools.lru_cache(maxsize=2)
def _http_date_of(second: int) -> str:
    return http_date(second)


def query_params(request: HttpRequest) -> dict[str, str]:
    """The query string's parameters, a repeated name's last value winning.

    Decoded as ``request.GET`` would be (UTF-8, undecodable bytes replaced, at most
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields, else ``TooManyFieldsSent``) without building
    a QueryDict: the hit endpoints read a handful of names once.
    """
    raw = request.META.get("QUERY_STRING", "")
    if not raw:
        return {}
    # WSGI hands over the bytes as latin-1; the query is UTF-8 (else, as QueryDict does,
    # it is read as latin-1).
    with contextlib.suppress(UnicodeError):
        raw = raw.encode("iso-8859-1").decode("utf-8")
    try:
        pairs = parse_qsl(
            raw,
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except ValueError as exc:
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from exc
    return dict(pairs)


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP: REMOTE_ADDR, or the proxy's X-Forwarded-For when configured.

    X-Forwarded-For is only trusted with USE_X_FORWARDED_FOR (behind a proxy that sets it);
    otherwise anyone could write any address into the logs. Its right-most entry is the one
    the trusted proxy wrote (SPEC "IP allow-list"); entries to its left are whatever the
    client claimed. (deploy/nginx/clicktrail.conf replaces the header with one entry.)
    """
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The right-most entry: the one the trusted proxy wrote. Those left of it are
            # whatever the client sent, and an IP allow-list (docs/postbacks.md check 3a)
            # must not be passed by writing an allowed address into the header.
            candidate = forwarded.rsplit(",", 1)[-1].strip()
    return _normalised_ip(candidate[:64])


# The same few addresses (advertisers' servers, a proxy) send most hits: parsing one costs
# more than looking it up.
@functools.lru_cache(maxsize=4096)
def _normalised_ip(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def header(request: HttpRequest, name: str, limit: int) -> str:
    """A request header as text, cut to what its column holds."""
    return request.META.get(name, "")[:limit]


class BodyRefused(Exception):
    """A request body the hit endpoints do not read: over ``BODY_LIMIT`` (``too_large``), in
    a charset that is no ASCII-compatible text encoding, not decodable, or malformed."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


# Every printable ASCII character, tab and line ends: what a form body's syntax is made of.
_ASCII_SAMPLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"


@functools.lru_cache(maxsize=64)
def text_charset(name: str) -> str | None:
    """The codec's name when ``name`` is a text encoding Python knows that reads ASCII as
    ASCII (so ``&``, ``=`` and ``%XX`` mean what they mean), else None.

    Refused: unknown names, codecs that are no text encoding (``rot13``, ``base64``), and
    encodings that are not ASCII-compatible (UTF-16, UTF-7, EBCDIC). The cache is bounded,
    whatever names clients send.
    """
    try:
        info = codecs.lookup(name)
        ascii_text = _ASCII_SAMPLE.decode("ascii")
        compatible = (
            _ASCII_SAMPLE.decode(info.name) == ascii_text
            and ascii_text.encode(info.name) == _ASCII_SAMPLE
        )
    except (LookupError, ValueError, TypeError):
        # LookupError: unknown, or not a text encoding; ValueError (UnicodeError): it cannot
        # even read ASCII.
        return None
    return info.name if compatible else None


#: Where config.charset's WSGI wrapper sets aside a charset it took out of CONTENT_TYPE.
REFUSED_CHARSET = "clicktrail.refused_charset"


def declared_charset(request: HttpRequest) -> str:
    """The body's declared charset (UTF-8 by default); ``BodyRefused`` if it is no
    ASCII-compatible text encoding."""
    declared = request.META.get(REFUSED_CHARSET) or request.content_params.get("charset")
    if declared is None:
        return "utf-8"
    charset = text_charset(declared.strip().lower()[:40])
    if charset is None:
        raise BodyRefused(
            f"The body's charset {declared[:40]!r} is not an ASCII-compatible text encoding."
        )
    return charset


def check_declared_size(request: HttpRequest) -> None:
    """``BodyRefused(too_large=True)`` when Content-Length announces more than ``BODY_LIMIT``,
    before anything is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > BODY_LIMIT:
        raise BodyRefused(
            f"The request body ({declared} bytes) is over the limit of {BODY_LIMIT} bytes.",
            too_large=True,
        )


def request_body(request: HttpRequest) -> bytes:
    """The request body, at most ``BODY_LIMIT`` bytes, chunked or not.

    Django reads ``Content-Length`` bytes, so a chunked body (no Content-Length; the server
    decodes the chunks, WSGI's ``wsgi.input_terminated``) would read as empty: it is read
    from the input stream to its end, and refused once it passes the limit.
    """
    check_declared_size(request)
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked:
        try:
            return request.body
        except OSError as exc:  # UnreadablePostError: the client sent less than it announced
            raise BodyRefused(f"The request body could not be read: {exc}") from exc
    stream = request.META["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(BODY_LIMIT + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > BODY_LIMIT:
            raise BodyRefused(
                f"The request body is over the limit of {BODY_LIMIT} bytes.", too_large=True
            )
    return b"".join(chunks)


def form_params(request: HttpRequest) -> dict[str, str]:
    """A POST's form body (urlencoded or multipart) as parameters, a repeated name's last
    value winning; ``{}`` for other content types (their body is not read as parameters).

    Read in the charset the body declares (SPEC "Postback endpoint"), strictly: bytes that
    do not decode are refused, not replaced. Raises ``BodyRefused`` for a body that is too
    large, in a refused charset or undecodable, or malformed.
    """
    body = request_body(request)
    content_type = request.content_type
    if content_type not in (FORM_CONTENT_TYPE, MULTIPART_CONTENT_TYPE) or not body:
        return {}
    charset = declared_charset(request)
    if content_type == FORM_CONTENT_TYPE:
        return _urlencoded(body, charset)
    return _multipart(request, body, charset)


def _urlencoded(body: bytes, charset: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode(charset),
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise BodyRefused(f"The form body does not decode as {charset}.") from exc
    except ValueError as exc:
        raise BodyRefused(
            "The number of parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from exc
    return dict(pairs)


def _multipart(request: HttpRequest, body: bytes, charset: str) -> dict[str, str]:
    # The body is in memory already (at most BODY_LIMIT): the parser reads it from there,
    # with its real length (a chunked request has no Content-Length).
    meta = {**request.META, "CONTENT_LENGTH": str(len(body))}
    try:
        fields, _files = MultiPartParser(
            meta, BytesIO(body), request.upload_handlers, charset
        ).parse()
    except (MultiPartParserError, SuspiciousOperation, ValueError, LookupError) as exc:
        raise BodyRefused(f"The multipart body could not be read: {exc}") from exc
    return {name: values[-1] for name, values in fields.lists()}


def decodes_own_request(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Marks a view that decodes its query and body itself and answers whatever it cannot
    read (config.charset leaves such views their requests)."""
    view.decodes_own_request = True  # type: ignore[attr-defined]
    return view
