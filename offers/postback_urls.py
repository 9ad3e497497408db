"""Generated postback URLs (SPEC "Generated postback URLs"): built here and nowhere else.

The admin, the REST API and the docs all call these functions, so the URL an account
manager copies is the URL the endpoint was tested against.
"""

from urllib.parse import quote

from django.conf import settings

from offers.models import Advertiser, Event, Offer
from offers.parameters import DEFAULT_PLACEHOLDER, ordered_mapping


def _base_url() -> str:
    return f"{settings.TRACKING_BASE_URL}/postback"


def _render(params: list[tuple[str, str]]) -> str:
    # Names and our own values are URL-encoded; placeholders are shown as the partner
    # expects to find them ({clickid} stays {clickid}) because it substitutes them as text.
    return _base_url() + "?" + "&".join(f"{name}={value}" for name, value in params)


def _token_param(advertiser: Advertiser) -> tuple[str, str]:
    return ("secure", quote(advertiser.postback_token, safe=""))


def global_postback_url(advertiser: Advertiser) -> str:
    """Works for every offer of the advertiser: ``…/postback?secure=…&transaction_id=REPLACE``."""
    return _render([_token_param(advertiser), ("transaction_id", DEFAULT_PLACEHOLDER)])


def _offer_params(offer: Offer, overrides: dict[str, str]) -> list[tuple[str, str]]:
    mapping = {**offer.parameters, **overrides}
    transaction_placeholder = mapping.pop("transaction_id", DEFAULT_PLACEHOLDER)
    params = [
        _token_param(offer.advertiser),
        ("transaction_id", transaction_placeholder),
        ("offer_id", str(offer.pk)),
    ]
    # The offer's own mapped parameters, with the event's placeholder where both map one.
    params += [
        (name, mapping[name])
        for name in ordered_mapping(offer.parameters)
        if name != "transaction_id"
    ]
    return params


def offer_postback_url(offer: Offer) -> str:
    """The offer's conversion URL: the global URL with ``offer_id`` and the offer's mapping."""
    return _render(_offer_params(offer, {}))


def event_postback_url(event: Event, *, offer: Offer | None = None) -> str:
    """An event's URL: the offer URL with ``event_id``, ``event_name`` and the event's mapping.

    Where the offer and the event both map a parameter (or the ``transaction_id``
    placeholder), the event's placeholder wins. ``offer`` may be passed to save a query
    when listing many events of one offer.
    """
    offer = offer or event.offer
    event_mapping = dict(event.parameters)
    params = _offer_params(offer, event_mapping)
    params += [("event_id", str(event.pk)), ("event_name", quote(event.name, safe=""))]
    already = {name for name, _ in params}
    params += [
        (name, placeholder)
        for name, placeholder in ordered_mapping(event_mapping).items()
        if name not in already and name != "transaction_id"
    ]
    return _render(params)


#: Parameters whose placeholder is the partner's macro for one same value in every URL of an
#: offer: a conversion URL and an event URL that disagree cannot both be filled.
SHARED_PLACEHOLDERS = ("transaction_id",)


def placeholder_mismatches(offer: Offer, events: list[Event]) -> list[tuple[Event, str, str, str]]:
    """Where an event's URL shows another placeholder than the offer's conversion URL.

    ``(event, parameter, conversion placeholder, event placeholder)`` for each event whose
    ``transaction_id`` placeholder differs from the conversion URL's, e.g. ``{clickid}``
    (AppsFlyer) in the event and ``REPLACE`` in the conversion: the advertiser would be given
    two URLs of which only one is filled by their partner.
    """
    found = []
    for name in SHARED_PLACEHOLDERS:
        conversion = offer.parameters.get(name, DEFAULT_PLACEHOLDER)
        for event in events:
            placeholder = {**offer.parameters, **event.parameters}.get(name, DEFAULT_PLACEHOLDER)
            if placeholder != conversion:
                found.append((event, name, conversion, placeholder))
    return found


def tracking_url(offer: Offer, *, publisher_id: int | str = "REPLACE", **subs: str) -> str:
    """The tracking link a publisher shares: ``…/click?offer_id=…&aff_id=…`` plus sub-IDs."""
    params = [("offer_id", str(offer.pk)), ("aff_id", quote(str(publisher_id), safe=""))]
    params += [(name, quote(value, safe="")) for name, value in subs.items() if value]
    query = "&".join(f"{name}={value}" for name, value in params)
    return f"{settings.TRACKING_BASE_URL}/click?{query}"


# --- Status postback URLs (docs/postbacks.md "Approving and rejecting") -------------


def _status_render(params: list[tuple[str, str]]) -> str:
    return f"{settings.TRACKING_BASE_URL}/postback/status?" + "&".join(
        f"{name}={value}" for name, value in params
    )


def _status_params(offer: Offer, transaction_placeholder: str) -> list[tuple[str, str]]:
    return [
        _token_param(offer.advertiser),
        ("transaction_id", transaction_placeholder),
        ("offer_id", str(offer.pk)),
    ]


def conversion_status_url(offer: Offer) -> str:
    """Where the advertiser approves or rejects a conversion of the offer:
    ``…/postback/status?secure=…&transaction_id=REPLACE&offer_id=…&status=REPLACE&reason=REPLACE``.

    ``status`` is ``approved`` or ``rejected``; ``reason`` is optional text. The
    ``transaction_id`` placeholder is the offer's, as in its postback URL.
    """
    placeholder = offer.parameters.get("transaction_id", DEFAULT_PLACEHOLDER)
    params = _status_params(offer, placeholder)
    params += [("status", DEFAULT_PLACEHOLDER), ("reason", DEFAULT_PLACEHOLDER)]
    return _status_render(params)


def event_status_url(event: Event, *, offer: Offer | None = None) -> str:
    """Where the advertiser approves or rejects an event record: the conversion's status URL
    with ``event_id`` and ``event_name``, and ``adv_sub`` for an event that allows multiple
    records per click (it tells them apart)."""
    offer = offer or event.offer
    placeholder = event.parameters.get(
        "transaction_id", offer.parameters.get("transaction_id", DEFAULT_PLACEHOLDER)
    )
    params = _status_params(offer, placeholder)
    params += [("event_id", str(event.pk)), ("event_name", quote(event.name, safe=""))]
    if event.allow_multiple:
        adv_sub = event.parameters.get(
            "adv_sub", offer.parameters.get("adv_sub", DEFAULT_PLACEHOLDER)
        )
        params.append(("adv_sub", adv_sub))
    params += [("status", DEFAULT_PLACEHOLDER), ("reason", DEFAULT_PLACEHOLDER)]
    return _status_render(params)
