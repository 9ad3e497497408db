"""Services for the tracking link (clicks). The postback rules live in tracking/postback.py."""

import secrets
from dataclasses import dataclass
from urllib.parse import quote

from offers.models import Offer
from tracking.models import Click
from tracking.sql import MAX_DEFINITION_ID, fetch, instance

SUB_FIELDS = ("aff_sub", "aff_sub2", "aff_sub3", "aff_sub4", "aff_sub5", "source")


# Serves: the primary keys of offers_offer and offers_publisher.
_OFFER_AND_PUBLISHER_SQL = """
SELECT o.status, o.destination_url,
       EXISTS (SELECT 1 FROM offers_publisher p WHERE p.id = %(publisher)s)
FROM offers_offer o
WHERE o.id = %(offer)s
"""


class ClickRefused(Exception):
    """The tracking link cannot be followed (unknown or paused offer, unknown publisher)."""


def generate_transaction_id() -> str:
    """32 characters of ``[A-Za-z0-9_-]`` carrying 192 bits of randomness."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ClickResult:
    click: Click
    redirect_url: str


def _destination(offer: Offer, click: Click) -> str:
    """The offer's destination URL with its macros replaced, each value URL-encoded."""
    macros = {
        "{transaction_id}": click.transaction_id,
        "{offer_id}": str(offer.pk),
        "{aff_id}": str(click.publisher_id),
        **{"{" + field + "}": getattr(click, field) for field in SUB_FIELDS},
    }
    url = offer.destination_url
    for macro, value in macros.items():
        if macro in url:
            url = url.replace(macro, quote(value, safe=""))
    return url


def click_record(
    *,
    offer_id: int,
    publisher_id: int,
    subs: dict[str, str],
    ip: str | None,
    user_agent: str,
    referrer: str,
    is_test: bool = False,
) -> ClickResult:
    """Record a click through a tracking link and say where to send the visitor.

    Raises ``ClickRefused`` for an unknown offer or publisher or a paused offer; then
    nothing is stored. ``subs`` holds ``aff_sub`` … ``aff_sub5`` and ``source``.
    """
    if offer_id > MAX_DEFINITION_ID:
        raise ClickRefused(f"No offer has ID {offer_id}.")
    if publisher_id > MAX_DEFINITION_ID:
        raise ClickRefused(f"No publisher has ID {publisher_id}.")
    # One round trip for the offer and the publisher, written in SQL: compiling the
    # equivalent QuerySets costs more than the rest of the click (docs/benchmarks.md).
    rows = fetch(_OFFER_AND_PUBLISHER_SQL, {"offer": offer_id, "publisher": publisher_id})
    if not rows:
        raise ClickRefused(f"No offer has ID {offer_id}.")
    status, destination_url, publisher_exists = rows[0]
    if status != Offer.Status.ACTIVE:
        raise ClickRefused(f"Offer {offer_id} is paused and does not accept clicks.")
    if not publisher_exists:
        raise ClickRefused(f"No publisher has ID {publisher_id}.")
    offer = instance(Offer, id=offer_id, status=status, destination_url=destination_url)
    click = Click(
        transaction_id=generate_transaction_id(),
        offer_id=offer.pk,
        publisher_id=publisher_id,
        ip=ip,
        user_agent=user_agent,
        referrer=referrer,
        is_test=is_test,
        **{field: subs.get(field, "") for field in SUB_FIELDS},
    )
    # A single INSERT is atomic by itself: no transaction round trips around it.
    click.save(force_insert=True)
    return ClickResult(click=click, redirect_url=_destination(offer, click))
