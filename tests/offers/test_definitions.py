"""The definitions cache of the tracking path (offers/definitions.py) is exact.

An edit to an advertiser, offer or event counts from the next hit on, in this process and
in every server process: the cache is keyed by a version that every write to those tables
changes (a trigger on PostgreSQL) and that each hit reads in its own statement.
"""

from decimal import Decimal

import pytest
import requests
from django.db import connection, transaction

from offers.definitions import cached_definitions
from offers.models import Event, Offer
from offers.services import advertiser_rotate_token, event_create, event_update
from tests.factories import (
    AdvertiserFactory,
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
)
from tests.markers import requires_postgresql
from tests.servers import fire_at_once
from tracking.models import EventRecord

pytestmark = pytest.mark.django_db


def version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM offers_definitions_version")
        return cursor.fetchone()[0]


def params(click, **extra) -> dict[str, str]:  # noqa: ANN001
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
        **extra,
    }


def test_an_edited_event_pays_its_new_rules_from_the_next_postback_on(client):
    event = EventFactory(payout_value=Decimal("1.00"))
    first, second = (ConversionFactory(click__offer=event.offer) for _ in range(2))
    assert client.get("/postback", params(first.click, event_id=event.pk)).json()["payout"] == (
        "1.00"
    )

    event_update(event=event, payout_value=Decimal("1.50"))
    answer = client.get("/postback", params(second.click, event_id=event.pk)).json()

    assert answer["payout"] == "1.50"
    assert sorted(EventRecord.objects.values_list("payout", flat=True)) == [
        Decimal("1.00"),
        Decimal("1.50"),
    ]


def test_an_offer_paused_after_a_click_refuses_the_next_one(client):
    offer = OfferFactory()
    click = {"offer_id": offer.pk, "aff_id": ClickFactory(offer=offer).publisher_id}
    assert client.get("/click", click).status_code == 302

    Offer.objects.filter(pk=offer.pk).update(status=Offer.Status.PAUSED)
    assert client.get("/click", click).status_code == 404

    Offer.objects.filter(pk=offer.pk).update(status=Offer.Status.ACTIVE)
    assert client.get("/click", click).status_code == 302


def test_a_rotated_token_stops_working_at_once(client):
    first, second = ClickFactory(), None
    advertiser = first.offer.advertiser
    second = ClickFactory(offer=first.offer)
    old = advertiser.postback_token
    assert client.get("/postback", params(first)).status_code == 200

    advertiser_rotate_token(advertiser=advertiser)
    refused = client.get("/postback", {"secure": old, "transaction_id": second.transaction_id})
    accepted = client.get(
        "/postback",
        {"secure": advertiser.postback_token, "transaction_id": second.transaction_id},
    )

    assert (refused.status_code, refused.json()["reason"]) == (403, "invalid_secure")
    assert accepted.status_code == 200


def test_an_event_created_after_a_postback_is_known_to_the_next(client):
    conversion = ConversionFactory()
    assert client.get("/postback", params(conversion.click, event_name="signup")).status_code == (
        404
    )

    event_create(
        offer=conversion.offer,
        name="signup",
        revenue_type="CPA",
        revenue_value=Decimal("1"),
        payout_type="CPA",
        payout_value=Decimal("0.5"),
    )

    assert client.get("/postback", params(conversion.click, event_name="signup")).status_code == (
        200
    )


@requires_postgresql
def test_every_write_to_a_definition_sets_a_new_version():
    seen = [version()]

    def changed() -> None:
        seen.append(version())
        assert seen[-1] not in seen[:-1]

    advertiser = AdvertiserFactory()
    changed()
    offer = OfferFactory(advertiser=advertiser)
    changed()
    Offer.objects.filter(pk=offer.pk).update(currency="EUR")
    changed()
    event = EventFactory(offer=offer)
    changed()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE offers_event SET payout_value = 2 WHERE id = %s", [event.pk])
    changed()
    Event.objects.filter(pk=event.pk).delete()
    changed()
    advertiser_rotate_token(advertiser=advertiser)
    changed()


@requires_postgresql
def test_a_version_is_never_used_twice_even_after_a_rollback():
    before = version()
    with transaction.atomic():
        sid = transaction.savepoint()
        OfferFactory()
        rolled_back = version()
        transaction.savepoint_rollback(sid)
    assert version() == before

    OfferFactory()

    assert version() not in (before, rolled_back)


@requires_postgresql
def test_the_version_triggers_are_on_every_definition_table():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger "
            "WHERE tgname LIKE '%%_definitions_changed' AND tgenabled = 'O'"
        )
        tables = sorted(row[0] for row in cursor.fetchall())

    assert tables == ["offers_advertiser", "offers_event", "offers_offer"]


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_every_server_judges_by_what_was_committed_a_moment_before(servers):
    event = EventFactory(payout_value=Decimal("1.00"))
    offer, advertiser = event.offer, event.offer.advertiser
    converted = [ConversionFactory(click__offer=offer).click for _ in range(32)]
    token = advertiser.postback_token
    urls = [servers[n % 2] for n in range(16)]

    def events(clicks: list, secure: str = token) -> list[requests.Response]:
        return fire_at_once(
            urls,
            [
                {"secure": secure, "transaction_id": c.transaction_id, "event_id": event.pk}
                for c in clicks
            ],
        )

    # Every worker thread that answers caches the offer, its token and its events.
    warm = events(converted[:16])
    assert {r.json()["payout"] for r in warm} == {"1.00"}

    event_update(event=event, payout_value=Decimal("1.50"))
    assert {r.json()["payout"] for r in events(converted[16:])} == {"1.50"}

    Offer.objects.filter(pk=offer.pk).update(status=Offer.Status.PAUSED)
    link = {"offer_id": offer.pk, "aff_id": converted[0].publisher_id}
    clicks = [requests.get(f"{url}/click", link, allow_redirects=False, timeout=30) for url in urls]
    assert {r.status_code for r in clicks} == {404}

    advertiser_rotate_token(advertiser=advertiser)
    refused = fire_at_once(
        urls, [{"secure": token, "transaction_id": c.transaction_id} for c in converted[:16]]
    )
    assert {(r.status_code, r.json()["reason"]) for r in refused} == {(403, "invalid_secure")}


@requires_postgresql
def test_made_up_offer_ids_do_not_grow_the_cache(client):
    offer = OfferFactory()
    publisher = ClickFactory(offer=offer).publisher_id
    assert client.get("/click", {"offer_id": offer.pk, "aff_id": publisher}).status_code == 302

    for made_up in range(offer.pk + 1000, offer.pk + 1100):
        assert client.get("/click", {"offer_id": made_up, "aff_id": publisher}).status_code == 404

    assert list(cached_definitions()._offers) == [offer.pk]


def test_an_offer_created_after_the_advertisers_offers_were_learned_is_a_candidate_at_once(
    client,
):
    """The global URL's one-statement path tries the advertiser's cached offers: a new
    offer (a new version) must not be missed."""
    first = ClickFactory()
    advertiser = first.offer.advertiser
    client.get("/postback", params(first))  # learns the advertiser's offers

    new_offer = OfferFactory(advertiser=advertiser, payout_value=Decimal("7.00"))
    click = ClickFactory(offer=new_offer)
    answer = client.get("/postback", params(click)).json()

    assert (answer["reason"], answer["offer_id"], answer["payout"]) == (
        "accepted",
        new_offer.pk,
        "7.00",
    )


@requires_postgresql
def test_a_global_url_postback_caches_its_advertisers_offers_and_their_events(client):
    offer = OfferFactory()
    other = OfferFactory(advertiser=offer.advertiser)
    EventFactory(offer=offer, name="purchase")
    EventFactory(offer=other, name="purchase")
    client.get("/postback", params(ClickFactory(offer=offer)))
    defs = cached_definitions()
    assert defs is not None

    assert set(defs.cached_advertiser_offers(offer.advertiser_id)) == {offer.pk, other.pk}
    assert set(defs.cached_events(other.pk).by_name) == {"purchase"}
    assert defs.cached_advertiser_for_token(offer.advertiser.postback_token) == (
        offer.advertiser_id
    )
    assert defs.cached_advertiser_for_token("x" * 43) is None
