"""The offer and advertiser rules of tracking/rules.py without a database: check 3a (the IP
allow-list) and check 7a (the conversion window), table-driven, and the allow-list's
matching on its own (offers/allow_list.py)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from offers.allow_list import REMEMBERED, AllowList, normalise_allow_list
from offers.definitions import Definitions, EventDefinition, MoneyRules, OfferDefinition
from tracking import rules
from tracking.models import Reason
from tracking.rules import ClickFacts, Facts

TOKEN = "a" * 43
OTHER_TOKEN = "b" * 43
FIXED = MoneyRules("CPA", Decimal("5.00"), "CPA", Decimal("3.00"))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LISTED = AllowList.of(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"])

# Offer 10: allow-list, 30-day window. Offer 12: the same, CPS. Offer 20: another
# advertiser, no list, no window.
OFFER_10 = OfferDefinition(
    10,
    1,
    TOKEN,
    "active",
    "https://x.example/",
    "USD",
    FIXED,
    allow_list=LISTED,
    conversion_window_days=30,
)
OFFER_12 = replace(OFFER_10, id=12, money=MoneyRules("CPS", Decimal("10"), "CPA", Decimal("1")))
OFFER_20 = OfferDefinition(20, 2, OTHER_TOKEN, "active", "https://x.example/", "USD", FIXED)
PURCHASE = EventDefinition(100, 10, "purchase", False, FIXED)
DEFS = Definitions.of(offers=[OFFER_10, OFFER_12, OFFER_20], events=[PURCHASE])


def click(offer_id: int = 10, *, converted: bool = False, age: timedelta | None = None):
    created = NOW - age if age is not None else None
    return ClickFacts(offer_id=offer_id, has_conversion=converted, created_at=created)


def decide(facts: Facts, **given: str) -> rules.Decision:
    parsed = rules.parse({"secure": TOKEN, "transaction_id": "t" * 20} | given)
    assert isinstance(parsed, rules.PostbackParams)
    return rules.decide(parsed, replace(facts, now=NOW), DEFS)


FROM_LIST = "203.0.113.9"
DAY = timedelta(days=1)

# (case, facts, parameters, reason)
CHECK_TABLE = [
    ("3a listed IPv4 range", Facts(click(age=DAY), ip=FROM_LIST), {}, Reason.ACCEPTED),
    ("3a listed single address", Facts(click(age=DAY), ip="198.51.100.7"), {}, Reason.ACCEPTED),
    ("3a listed IPv6 range", Facts(click(age=DAY), ip="2001:db8::5"), {}, Reason.ACCEPTED),
    (
        "3a IPv4-mapped IPv6 matches its IPv4",
        Facts(click(age=DAY), ip="::ffff:203.0.113.9"),
        {},
        Reason.ACCEPTED,
    ),
    ("3a not listed", Facts(click(age=DAY), ip="192.0.2.1"), {}, Reason.IP_NOT_ALLOWED),
    ("3a unknown address", Facts(click(age=DAY), ip=None), {}, Reason.IP_NOT_ALLOWED),
    ("3a unparseable address", Facts(click(age=DAY), ip="nonsense"), {}, Reason.IP_NOT_ALLOWED),
    (
        "3a skipped for the Test postback",
        Facts(click(age=DAY), ip="192.0.2.1", check_allow_list=False),
        {},
        Reason.ACCEPTED,
    ),
    (
        "3a after check 3: nobody's token is invalid_secure",
        Facts(click(age=DAY), ip="192.0.2.1"),
        {"secure": "z" * 43},
        Reason.INVALID_SECURE,
    ),
    (
        "3a before check 4: an unknown click from elsewhere",
        Facts(None, ip="192.0.2.1"),
        {},
        Reason.IP_NOT_ALLOWED,
    ),
    (
        "3a is the token's advertiser's list, not the click's",
        Facts(click(20, age=DAY), ip="192.0.2.1"),
        {"secure": OTHER_TOKEN},
        Reason.ACCEPTED,
    ),
    (
        "3a before check 5: another advertiser's click from elsewhere",
        Facts(click(20, age=DAY), ip="192.0.2.1"),
        {},
        Reason.IP_NOT_ALLOWED,
    ),
    (
        "3a applies to events",
        Facts(click(converted=True), ip="192.0.2.1"),
        {"event_id": "100"},
        Reason.IP_NOT_ALLOWED,
    ),
    ("7a inside the window", Facts(click(age=29 * DAY), ip=FROM_LIST), {}, Reason.ACCEPTED),
    (
        "7a on the window's edge",
        Facts(click(age=30 * DAY), ip=FROM_LIST),
        {},
        Reason.ACCEPTED,
    ),
    (
        "7a older than the window",
        Facts(click(age=30 * DAY + timedelta(seconds=1)), ip=FROM_LIST),
        {},
        Reason.CLICK_EXPIRED,
    ),
    (
        "7a after check 7: a resent conversion is still a duplicate",
        Facts(click(converted=True, age=365 * DAY), ip=FROM_LIST),
        {},
        Reason.DUPLICATE_CONVERSION,
    ),
    (
        "7a before check 8 (amount)",
        Facts(click(12, age=365 * DAY), ip=FROM_LIST),
        {},
        Reason.CLICK_EXPIRED,
    ),
    ("8 after 7a", Facts(click(12, age=DAY), ip=FROM_LIST), {}, Reason.AMOUNT_REQUIRED),
    (
        "7a no window: any age",
        Facts(click(20, age=3650 * DAY)),
        {"secure": OTHER_TOKEN},
        Reason.ACCEPTED,
    ),
    (
        "7a does not bound events",
        Facts(click(converted=True, age=365 * DAY), ip=FROM_LIST, duplicate_event=False),
        {"event_id": "100"},
        Reason.ACCEPTED,
    ),
]


@pytest.mark.parametrize(
    ("facts", "given", "reason"),
    [case[1:] for case in CHECK_TABLE],
    ids=[case[0] for case in CHECK_TABLE],
)
def test_each_offer_rule_decides_in_its_place_in_the_check_order(facts, given, reason):
    decision = decide(facts, **given)

    assert decision.reason == reason
    assert (
        decision.status_code
        == {
            Reason.ACCEPTED: 200,
            Reason.IP_NOT_ALLOWED: 403,
            Reason.INVALID_SECURE: 403,
            Reason.CLICK_EXPIRED: 422,
            Reason.DUPLICATE_CONVERSION: 409,
            Reason.AMOUNT_REQUIRED: 422,
        }[reason]
    )


def test_an_unknown_click_time_is_assumed_in_the_window_and_the_assumption_is_stated():
    decision = decide(Facts(click(age=None), ip=FROM_LIST))

    assert decision.accepted
    assert decision.clicked_after == NOW - timedelta(days=30)


def test_a_known_click_time_or_no_window_states_no_assumption():
    assert decide(Facts(click(age=DAY), ip=FROM_LIST)).clicked_after is None
    no_window = decide(Facts(click(20, age=None)), secure=OTHER_TOKEN)
    assert no_window.accepted and no_window.clicked_after is None


def test_the_refusals_say_what_to_do():
    assert "listed addresses" in decide(Facts(click(age=DAY), ip="192.0.2.1")).message
    expired = decide(Facts(click(age=31 * DAY), ip=FROM_LIST))
    assert "30 days" in expired.message


# (entry list, address, admitted)
MATCHING = [
    ([], "192.0.2.1", True),
    ([], None, True),
    (["192.0.2.1"], "192.0.2.1", True),
    (["192.0.2.1"], "192.0.2.2", False),
    (["192.0.2.0/31"], "192.0.2.1", True),
    (["192.0.2.0/31"], "192.0.2.2", False),
    (["10.0.0.7/8"], "10.200.1.1", True),  # host bits cleared: the range is plain
    (["2001:db8::/64"], "2001:db8::1", True),
    (["2001:db8::/64"], "2001:db9::1", False),
    (["2001:DB8::1"], "2001:db8::1", True),
    (["192.0.2.1"], "::ffff:192.0.2.1", True),
    (["::ffff:192.0.2.1"], "192.0.2.1", True),
    (["::ffff:192.0.2.0/120"], "192.0.2.200", True),
    (["0.0.0.0/0"], "2001:db8::1", False),  # an IPv4 range admits no IPv6 address
    (["::/0"], "192.0.2.1", False),
    (["192.0.2.1"], "", False),
    (["192.0.2.1"], "192.0.2.1.5", False),
    (["192.0.2.1"], "x" * 300, False),
    (["not an address", "192.0.2.1"], "192.0.2.1", True),  # a bad stored entry is skipped
]


@pytest.mark.parametrize(("entries", "ip", "admitted"), MATCHING)
def test_the_allow_list_admits_listed_addresses_and_ranges_only(entries, ip, admitted):
    assert AllowList.of(entries).permits(ip) is admitted


def test_a_remembered_answer_is_the_same_answer_and_the_memory_stays_bounded():
    allow_list = AllowList.of(["10.0.0.0/8"])
    addresses = [f"10.0.{n // 256}.{n % 256}" for n in range(REMEMBERED)]
    addresses += [f"192.0.2.{n}" for n in range(REMEMBERED)]

    for _ in range(2):
        answers = [allow_list.permits(ip) for ip in addresses]
        assert answers == [True] * REMEMBERED + [False] * REMEMBERED
    assert len(allow_list._answers) <= REMEMBERED


def test_entries_are_stored_canonically_without_blanks_or_repeats():
    assert normalise_allow_list(
        [" 192.0.2.1 ", "", "10.0.0.7/8", "2001:DB8::/32", "192.0.2.1/32", "::ffff:1.2.3.4"]
    ) == ["192.0.2.1/32", "10.0.0.0/8", "2001:db8::/32", "1.2.3.4/32"]


@pytest.mark.parametrize(
    "entries", [["192.0.2.300"], ["example.com"], ["10.0.0.0/33"], "192.0.2.1", [7]]
)
def test_entries_that_are_no_address_or_range_are_refused(entries):
    with pytest.raises(ValidationError):
        normalise_allow_list(entries)
