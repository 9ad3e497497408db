"""The delivery rules as pure functions, table-driven: which postback fires (most specific
wins) and what follows an attempt (the SPEC's backoff). No database."""

from datetime import UTC, datetime, timedelta

import pytest

from offers.definitions import PostbackDefinition
from tracking.deliveries import MAX_ATTEMPTS, RETRY_DELAYS, next_step, winning_postbacks
from tracking.outbound import AttemptResult, address_allowed

OFFER, OTHER_OFFER, EVENT, OTHER_EVENT = 10, 11, 100, 101


def pb(id_: int, trigger: str, *, publisher: int = 1, offer=None, event=None):  # noqa: ANN001
    return PostbackDefinition(id_, publisher, offer, trigger, event, f"https://p{id_}.example/")


ALL_CONV = pb(1, "conversion")
OFFER_CONV = pb(2, "conversion", offer=OFFER)
OTHER_OFFER_CONV = pb(3, "conversion", offer=OTHER_OFFER)
ALL_ANY_EVENT = pb(4, "event")
OFFER_ANY_EVENT = pb(5, "event", offer=OFFER)
OFFER_ONE_EVENT = pb(6, "event", offer=OFFER, event=EVENT)
OFFER_OTHER_EVENT = pb(7, "event", offer=OFFER, event=OTHER_EVENT)
STATUS_ALL = pb(8, "status")
ALL_CONV_NEWER = pb(9, "conversion")


@pytest.mark.parametrize(
    ("postbacks", "trigger", "event", "winner"),
    [
        ([], "conversion", None, None),
        ([ALL_CONV], "conversion", None, ALL_CONV),
        ([ALL_CONV, OFFER_CONV], "conversion", None, OFFER_CONV),
        ([OFFER_CONV, ALL_CONV], "conversion", None, OFFER_CONV),
        ([OTHER_OFFER_CONV], "conversion", None, None),
        ([OTHER_OFFER_CONV, ALL_CONV], "conversion", None, ALL_CONV),
        ([ALL_CONV_NEWER, ALL_CONV], "conversion", None, ALL_CONV),  # a tie: the oldest
        ([ALL_ANY_EVENT, STATUS_ALL], "conversion", None, None),
        ([ALL_CONV], "event", EVENT, None),
        ([ALL_ANY_EVENT], "event", EVENT, ALL_ANY_EVENT),
        ([ALL_ANY_EVENT, OFFER_ANY_EVENT], "event", EVENT, OFFER_ANY_EVENT),
        ([ALL_ANY_EVENT, OFFER_ANY_EVENT, OFFER_ONE_EVENT], "event", EVENT, OFFER_ONE_EVENT),
        ([OFFER_ONE_EVENT, OFFER_ANY_EVENT], "event", EVENT, OFFER_ONE_EVENT),
        ([OFFER_OTHER_EVENT], "event", EVENT, None),
        ([OFFER_OTHER_EVENT, ALL_ANY_EVENT], "event", EVENT, ALL_ANY_EVENT),
        ([STATUS_ALL, ALL_CONV], "status", None, STATUS_ALL),
    ],
)
def test_the_most_specific_matching_postback_of_a_publisher_fires(
    postbacks, trigger, event, winner
):
    winners = winning_postbacks(postbacks, trigger=trigger, offer_id=OFFER, event_id=event)

    assert winners == ({} if winner is None else {1: winner})


def test_each_publisher_gets_its_own_winner_and_a_named_publisher_only_its_own():
    first = pb(1, "conversion", publisher=1)
    second_all = pb(2, "conversion", publisher=2)
    second_offer = pb(3, "conversion", publisher=2, offer=OFFER)

    every = winning_postbacks(
        [first, second_all, second_offer], trigger="conversion", offer_id=OFFER
    )
    only = winning_postbacks(
        [first, second_all, second_offer], trigger="conversion", offer_id=OFFER, publisher_id=2
    )

    assert every == {1: first, 2: second_offer}
    assert only == {2: second_offer}


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def answer(code: int | None, *, refused: bool = False) -> AttemptResult:
    return AttemptResult(code, 10, error="" if code else "connection error", refused=refused)


@pytest.mark.parametrize(
    ("attempt", "result", "outcome", "delay"),
    [
        (1, answer(200), "delivered", None),
        (1, answer(204), "delivered", None),
        (7, answer(299), "delivered", None),
        (1, answer(503), "retrying", 60),
        (2, answer(500), "retrying", 300),
        (3, answer(429), "retrying", 1800),
        (4, answer(None), "retrying", 7200),  # connection error or time-out
        (5, answer(502), "retrying", 21600),
        (6, answer(504), "retrying", 64800),
        (7, answer(503), "failed", None),  # the 7th attempt is the last
        (1, answer(404), "failed", None),
        (1, answer(400), "failed", None),
        (1, answer(301), "failed", None),  # redirects are not followed
        (1, answer(None, refused=True), "failed", None),  # a refused address never retries
    ],
)
def test_after_an_attempt_the_delivery_is_delivered_retried_later_or_failed(
    attempt, result, outcome, delay
):
    got, at = next_step(attempts_made=attempt, result=result, now=NOW)

    assert got == outcome
    assert at == (None if delay is None else NOW + timedelta(seconds=delay))


def test_the_backoff_has_the_specs_seven_attempts_and_jitter_of_a_tenth():
    assert MAX_ATTEMPTS == 7
    assert RETRY_DELAYS == (60, 300, 1800, 7200, 21600, 64800)
    _, early = next_step(attempts_made=1, result=answer(503), now=NOW, jitter=-1)
    _, late = next_step(attempts_made=1, result=answer(503), now=NOW, jitter=1)
    assert (early - NOW, late - NOW) == (timedelta(seconds=54), timedelta(seconds=66))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1::1", True),
        ("127.0.0.1", False),
        ("127.9.9.9", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared address space
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("fe80::1", False),
        ("fc00::1", False),
        ("224.0.0.1", False),  # multicast
        ("ff02::1", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("0.0.0.0", False),  # noqa: S104
        ("::ffff:127.0.0.1", False),  # IPv4-mapped: judged as IPv4
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("::", False),
    ],
)
def test_only_global_addresses_are_allowed(settings, address, allowed):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False

    assert address_allowed(address) is allowed


def test_the_setting_allows_private_addresses(settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True

    assert address_allowed("127.0.0.1")
