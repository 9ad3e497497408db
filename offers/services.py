"""Services for the definitions account managers manage. Each owns its transaction."""

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from offers.models import Advertiser, Event, Offer
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
