"""Services for the tracking link (clicks). The postback rules live in tracking/postback.py."""

import functools
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from django.db import transaction
from django.utils import timezone

from offers.definitions import (
    Definitions,
    OfferDefinition,
    cached_definitions,
    current_version,
    definitions,
    version_sql,
)
from tracking.caps import hard_cap_full
from tracking.models import Click
from tracking.sql import MAX_DEFINITION_ID, Row, on_postgresql, run

SUB_FIELDS = ("aff_sub", "aff_sub2", "aff_sub3", "aff_sub4", "aff_sub5", "source")


class ClickRefused(Exception):
    """The tracking link cannot be followed (unknown or paused offer, unknown publisher)."""


def generate_transaction_id() -> str:
    """32 characters of ``[A-Za-z0-9_-]`` carrying 192 bits of randomness."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class ClickResult:
    click_id: int
    transaction_id: str
    redirect_url: str


_CLICK = Row(Click)

# One round trip: the definitions version and whether the publisher exists, and the click
# inserted only if the version is the one the offer was checked against (so a pause
# committed a moment ago in another process is never missed) and the publisher exists.
# Serves: the primary key of offers_publisher.
_RECORD_SQL = """
WITH state AS (
    SELECT {version} AS version,
           EXISTS (SELECT 1 FROM offers_publisher p WHERE p.id = %(publisher_id)s)
               AS publisher_known
), click AS (
    INSERT INTO {table} ({columns})
    SELECT {values} FROM state
    WHERE state.version = %(checked_version)s AND state.publisher_known
    RETURNING id
)
SELECT state.version, state.publisher_known, click.id FROM state LEFT JOIN click ON TRUE
"""

# SQLite: no version, and no data-modifying CTE; the two run in one transaction.
_PUBLISHER_SQL = """
SELECT NULL, EXISTS (SELECT 1 FROM offers_publisher p WHERE p.id = %(publisher_id)s)
"""
_INSERT_SQL = "INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id"


@functools.cache
def _record_sql() -> str:
    return _RECORD_SQL.format(
        version=version_sql(), table=_CLICK.table, columns=_CLICK.columns, values=_CLICK.select_list
    )


def _insert(click: dict, checked_version: int | None) -> tuple[int | None, bool, int | None]:
    """(version, publisher known, the new click's ID or None)."""
    if on_postgresql():
        ((version, publisher_known, click_id),) = run(
            _record_sql(), _CLICK.values(click) | {"checked_version": checked_version}
        )
        return version, publisher_known, click_id
    with transaction.atomic():
        ((version, publisher_known),) = run(_PUBLISHER_SQL, click)
        if not publisher_known:
            return version, False, None
        sql = _INSERT_SQL.format(
            table=_CLICK.table, columns=_CLICK.columns, values=_CLICK.placeholders
        )
        ((click_id,),) = run(sql, _CLICK.values(click))
        return version, True, click_id


def _destination(offer: OfferDefinition, click: dict) -> str:
    """The offer's destination URL (its fallback URL for a capped click) with its macros
    replaced, each value URL-encoded."""
    url = offer.fallback_url if click["capped"] and offer.fallback_url else offer.destination_url
    if "{" not in url:
        return url
    macros = {
        "{transaction_id}": click["transaction_id"],
        "{offer_id}": str(offer.id),
        "{aff_id}": str(click["publisher_id"]),
        **{"{" + field + "}": click[field] for field in SUB_FIELDS},
    }
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
    nothing is stored. ``subs`` holds ``aff_sub`` … ``aff_sub5`` and ``source``. The offer
    comes from the process's definitions cache; the insert itself confirms the cache's
    version, and a refusal reads the version before it refuses.
    """
    if offer_id > MAX_DEFINITION_ID:
        raise ClickRefused(f"No offer has ID {offer_id}.")
    if publisher_id > MAX_DEFINITION_ID:
        raise ClickRefused(f"No publisher has ID {publisher_id}.")
    click = {
        "transaction_id": generate_transaction_id(),
        "offer_id": offer_id,
        "publisher_id": publisher_id,
        **{field: subs.get(field, "") for field in SUB_FIELDS},
        "ip": ip,
        "user_agent": user_agent,
        "referrer": referrer,
        "is_test": is_test,
        "capped": False,
        "created_at": timezone.now(),
    }
    defs: Definitions = cached_definitions() or definitions(version=current_version())
    # Each pass either answers or found the definitions changed since the cache was made
    # (an edit committed meanwhile) and judges again by the new ones.
    while True:
        offer = defs.offer(offer_id)
        if offer is None or not offer.is_active:
            version = current_version()
            if version != defs.version:
                defs = definitions(version=version)
                continue
            if offer is None:
                raise ClickRefused(f"No offer has ID {offer_id}.")
            raise ClickRefused(f"Offer {offer_id} is paused and does not accept clicks.")
        # Capped clicks (docs/postbacks.md): recorded, flagged, sent to the fallback URL.
        click["capped"] = not is_test and hard_cap_full(
            offer, publisher_id=publisher_id, at=click["created_at"]
        )
        version, publisher_known, click_id = _insert(click, defs.version)
        if click_id is not None:
            return ClickResult(
                click_id=click_id,
                transaction_id=click["transaction_id"],
                redirect_url=_destination(offer, click),
            )
        if version != defs.version:
            defs = definitions(version=version)
            continue
        raise ClickRefused(f"No publisher has ID {publisher_id}.")
