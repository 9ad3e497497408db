"""Publisher postback URLs: their macros, the check on save, the filling, the masking.

SPEC "Publisher postbacks (outbound)". Pure functions: no database, no network. The
admin, the API, the delivery services and the docs all read the macro list from here.
"""

import functools
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

#: Every macro a publisher postback URL may hold, with what it is replaced by.
MACROS: dict[str, str] = {
    "transaction_id": "the click's transaction_id",
    "offer_id": "the offer's ID",
    "offer_name": "the offer's name",
    "aff_id": "the publisher's ID",
    "aff_sub": "the click's aff_sub",
    "aff_sub2": "the click's aff_sub2",
    "aff_sub3": "the click's aff_sub3",
    "aff_sub4": "the click's aff_sub4",
    "aff_sub5": "the click's aff_sub5",
    "source": "the click's source",
    "type": "conversion or event",
    "event_id": "the event's ID (empty for a conversion)",
    "event_name": "the event's name (empty for a conversion)",
    "payout": "what the publisher earns, e.g. 1.50",
    "currency": "the record's currency, e.g. USD",
    "status": "approved, pending or rejected",
    "status_reason": "a platform code (cap_reached, too_fast, …), or advertiser / manager",
    "record_id": "the conversion's or event record's ID",
    "delivery_id": "this delivery's ID (stable across retries: deduplicate on it)",
    "timestamp": "when the record was made, Unix seconds",
}

#: Macros whose values only exist once the rows are written; filled last (the database
#: fills them on PostgreSQL's one-statement path: tracking/deliveries.py).
ROW_MACROS = ("record_id", "delivery_id")

#: Parameters whose values the delivery log masks (SPEC: "URL sent … masked").
SECRET_PARAMETERS = frozenset(
    {"secure", "token", "key", "api_key", "secret", "password", "signature", "sig"}
)

_MACRO_RE = re.compile(r"\{([^{}]*)\}")
_BRACE_RE = re.compile(r"[{}]")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")
# Stand-in for a macro while the URL's structure is checked: unreserved characters only.
_STAND_IN = "macro0"


def macro_help() -> str:
    """The macro list shown under the URL field (admin) and in the docs."""
    return ", ".join(f"{{{name}}}" for name in MACROS)


def validate_postback_url(url: str) -> None:
    """Refuse a URL that could not be sent as written (a ``ValidationError`` saying why).

    ``http``/``https`` only; a host; macros only known ones, and only in the path and query
    (a macro in the scheme, host or port would let a click's values choose where the
    request goes). Addresses are judged when sending (tracking/outbound.py), since a host
    name may resolve differently later.
    """
    if not url:
        raise ValidationError("Enter the publisher's URL.")
    if _CONTROL_RE.search(url):
        raise ValidationError("The URL cannot hold spaces or control characters.")
    unknown = sorted({name for name in _MACRO_RE.findall(url) if name not in MACROS})
    if unknown:
        names = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValidationError(f"Unknown macro {names}. Supported: {macro_help()}.")
    if _BRACE_RE.search(_MACRO_RE.sub("", url)):
        raise ValidationError("A brace that is not part of a macro: write it as %7B or %7D.")
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if _BRACE_RE.search(scheme) or _BRACE_RE.search(authority):
        raise ValidationError(
            "Macros may stand only in the path and the query, not in the scheme, host or port."
        )
    parts = urlsplit(_MACRO_RE.sub(_STAND_IN, url))
    if parts.scheme.lower() not in ("http", "https") or not rest:
        raise ValidationError("The URL must start with http:// or https://.")
    try:
        hostname, port = parts.hostname, parts.port
    except ValueError as error:
        raise ValidationError(f"The URL's host or port is not valid ({error}).") from error
    if not hostname:
        raise ValidationError("The URL needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("The URL cannot carry a user name or password before the host.")
    if port == 0:
        raise ValidationError("The URL's port is not valid.")


@functools.lru_cache(maxsize=1024)
def url_pieces(template: str) -> tuple[tuple[tuple[str, str, str], ...], str]:
    """The template as (text before, macro name, the macro as written) for each macro, and the
    text after the last: read once per template (a postback's URL fills on every record)."""
    pieces, start = [], 0
    for match in _MACRO_RE.finditer(template):
        pieces.append((template[start : match.start()], match[1], match[0]))
        start = match.end()
    return tuple(pieces), template[start:]


def macros_in(template: str) -> frozenset[str]:
    """The names of the macros the template holds."""
    return frozenset(name for _, name, _ in url_pieces(template)[0])


def fill_url(template: str, values: Mapping[str, object], *, keep: tuple[str, ...] = ()) -> str:
    """The URL with every macro replaced by its URL-encoded value (``""`` for a value that
    is None or missing); macros named in ``keep`` stay as they are."""
    pieces, tail = url_pieces(template)
    out = []
    for text, name, written in pieces:
        out.append(text)
        if name in keep:
            out.append(written)
        elif (value := values.get(name)) is not None:
            out.append(quote(str(value), safe=""))
    out.append(tail)
    return "".join(out)


def mask_url(url: str) -> str:
    """The URL with the values of secret-looking parameters masked, for the delivery log."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    masked = []
    for piece in parts.query.split("&"):
        name, sep, value = piece.partition("=")
        if sep and value and unquote_plus(name).lower() in SECRET_PARAMETERS:
            value = "***"
        masked.append(f"{name}{sep}{value}")
    return urlunsplit(parts._replace(query="&".join(masked)))
