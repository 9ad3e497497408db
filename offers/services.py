"""Services for the definitions account managers manage. Each owns its transaction."""

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from offers.caps import cap_created
from offers.models import Advertiser, Event, Offer, OfferCap
from offers.tokens import generate_postback_token


class EventHasRecords(Exception):
    """Raised when deleting an event that already has accepted records."""


def advertiser_create(*, name: str) -> Advertiser:
    """Create an advertiser with a fresh postback token."""
    advertiser = Advertiser(name=name)
    advertiser.set_postback_token(generate_postback_token())
    advertiser.full_clean()
    advertiser.save()
    return advertiser


def advertiser_rotate_token(*, advertiser: Advertiser) -> Advertiser:
    """Replace the advertiser's postback token. The old token stops working at once."""
    with transaction.atomic():
        advertiser.set_postback_token(generate_postback_token())
        advertiser.save(update_fields=["postback_token", "postback_token_digest", "updated_at"])
    return advertiser


def event_create(*, offer: Offer, **fields: Any) -> Event:
    """Define a new event on ``offer``; validation errors raise ``ValidationError``."""
    event = Event(offer=offer, **fields)
    event.full_clean()
    event.save()
    return event


def event_update(*, event: Event, **fields: Any) -> Event:
    """Change an event's definition. Records already accepted keep what they earned."""
    for name, value in fields.items():
        setattr(event, name, value)
    event.full_clean()
    event.save()
    return event


def event_delete(*, event: Event) -> None:
    """Delete an event that has no records; one with records raises ``EventHasRecords``."""
    try:
        with transaction.atomic():
            event.delete()
    except ProtectedError as exc:
        raise EventHasRecords(
            f"Event “{event.name}” has recorded postbacks and cannot be deleted; "
            "records keep referring to it."
        ) from exc


def offer_caps_replace(*, offer: Offer, caps: list[dict[str, Any]]) -> list[OfferCap]:
    """Replace the offer's caps whole (docs/postbacks.md "Caps"): each given as ``metric``,
    ``period``, ``limit``, ``publisher`` (a Publisher or None) and ``mode``. A cap equal to
    one the offer has keeps it (and its counters); a new one starts from what the current
    period's approved records add up to. Validation errors raise ``ValidationError``."""
    with transaction.atomic():
        existing = {
            (c.metric, c.period, c.limit, c.publisher_id, c.mode): c
            for c in OfferCap.objects.select_for_update().filter(offer=offer)
        }
        kept: list[OfferCap] = []
        for fields in caps:
            cap = OfferCap(offer=offer, **fields)
            cap.full_clean()
            same = existing.pop(
                (cap.metric, cap.period, cap.limit, cap.publisher_id, cap.mode), None
            )
            if same is not None:
                kept.append(same)
                continue
            cap.save()
            cap_created(cap)
            kept.append(cap)
        OfferCap.objects.filter(pk__in=[c.pk for c in existing.values()]).delete()
    return kept
