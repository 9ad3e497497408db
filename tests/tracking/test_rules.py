"""The postback rules (tracking/rules.py) without a database: one case per row of the check
table in docs/postbacks.md, and one per money rule.

The facts are what the writer would have read; the definitions are built in memory
(``Definitions.of``), so nothing here can reach a database.
"""

from decimal import Decimal

import pytest

from offers.definitions import Definitions, EventDefinition, MoneyRules, OfferDefinition
from tracking import rules
from tracking.models import Reason
from tracking.rules import ClickFacts, DuplicateMode, Facts, RecordKind

TOKEN_A = "a" * 43
TOKEN_B = "b" * 43
FIXED = MoneyRules("CPA", Decimal("5.00"), "CPA", Decimal("3.00"))
CPS = MoneyRules("CPS", Decimal("10"), "CPS", Decimal("5"))

# Advertiser 1 (token A) has offers 10 (fixed, events 100 "purchase" once and 101 "renew"
# repeatable) and 11 (CPS, event 110 "purchase" CPS); advertiser 2 (token B) has offer 20.
OFFER_10 = OfferDefinition(10, 1, TOKEN_A, "active", "https://x.example/", "USD", FIXED)
OFFER_11 = OfferDefinition(11, 1, TOKEN_A, "active", "https://x.example/", "EUR", CPS)
OFFER_20 = OfferDefinition(20, 2, TOKEN_B, "active", "https://x.example/", "USD", FIXED)
PURCHASE = EventDefinition(
    100, 10, "purchase", False, MoneyRules("CPA", Decimal("2"), "CPA", Decimal("1"))
)
RENEW = EventDefinition(101, 10, "renew", True, FIXED)
CPS_PURCHASE = EventDefinition(110, 11, "purchase", False, CPS)
CPS_RENEW = EventDefinition(111, 11, "renew", True, CPS)
DEFS = Definitions.of(
    offers=[OFFER_10, OFFER_11, OFFER_20], events=[PURCHASE, RENEW, CPS_PURCHASE, CPS_RENEW]
)

CONVERTED = ClickFacts(offer_id=10, has_conversion=True)
FRESH = ClickFacts(offer_id=10, has_conversion=False)


def params(**given: str) -> dict[str, str]:
    return {"secure": TOKEN_A, "transaction_id": "t" * 20} | given


def decide(given: dict[str, str], facts: Facts) -> rules.Decision:
    parsed = rules.parse(given)
    if isinstance(parsed, rules.Decision):
        return parsed
    return rules.decide(parsed, facts, DEFS)


# (check, parameters, facts, reason): the first check that fails decides.
CHECK_TABLE = [
    ("1 secure missing", {"transaction_id": "t" * 20}, Facts(FRESH), Reason.MISSING_PARAMETER),
    ("1 transaction_id empty", params(transaction_id=""), Facts(FRESH), Reason.MISSING_PARAMETER),
    ("2 amount malformed", params(amount="1,5"), Facts(FRESH), Reason.INVALID_PARAMETER),
    ("2 offer_id not positive", params(offer_id="0"), Facts(FRESH), Reason.INVALID_PARAMETER),
    ("2 currency not 3 letters", params(currency="US"), Facts(FRESH), Reason.INVALID_PARAMETER),
    ("2 value too long", params(adv_sub="x" * 256), Facts(FRESH), Reason.INVALID_PARAMETER),
    ("2 control character", params(event_name="a\x00"), Facts(FRESH), Reason.INVALID_PARAMETER),
    ("3 nobody's token", params(secure="z" * 43), Facts(FRESH), Reason.INVALID_SECURE),
    ("4 no click", params(), Facts(None), Reason.UNKNOWN_TRANSACTION),
    ("5 another advertiser's click", params(secure=TOKEN_B), Facts(FRESH), Reason.INVALID_SECURE),
    ("6 offer_id not the click's", params(offer_id="11"), Facts(FRESH), Reason.OFFER_MISMATCH),
    ("conversion 7 duplicate", params(), Facts(CONVERTED), Reason.DUPLICATE_CONVERSION),
    (
        "conversion 8 CPS without amount",
        params(),
        Facts(ClickFacts(11, has_conversion=False)),
        Reason.AMOUNT_REQUIRED,
    ),
    ("conversion 9 accepted", params(), Facts(FRESH), Reason.ACCEPTED),
    ("event 7 unknown event_id", params(event_id="110"), Facts(CONVERTED), Reason.UNKNOWN_EVENT),
    (
        "event 7 unknown event_name (case sensitive)",
        params(event_name="Purchase"),
        Facts(CONVERTED),
        Reason.UNKNOWN_EVENT,
    ),
    (
        "event 8 id and name of different events",
        params(event_id="100", event_name="renew"),
        Facts(CONVERTED),
        Reason.EVENT_MISMATCH,
    ),
    ("event 9 no conversion", params(event_name="purchase"), Facts(FRESH), Reason.NO_CONVERSION),
    (
        "event 10 single event recorded before",
        params(event_id="100"),
        Facts(CONVERTED, duplicate_event=True),
        Reason.DUPLICATE_EVENT,
    ),
    (
        "event 10 repeatable event with the same adv_sub",
        params(event_name="renew", adv_sub="order-1"),
        Facts(CONVERTED, duplicate_event=True),
        Reason.DUPLICATE_EVENT,
    ),
    (
        "event 11 CPS without amount",
        params(event_name="purchase"),
        Facts(ClickFacts(11, has_conversion=True), duplicate_event=False),
        Reason.AMOUNT_REQUIRED,
    ),
    (
        "event 12 accepted",
        params(event_id="100", event_name="purchase"),
        Facts(CONVERTED, duplicate_event=False),
        Reason.ACCEPTED,
    ),
]


@pytest.mark.parametrize(
    ("given", "facts", "reason"),
    [case[1:] for case in CHECK_TABLE],
    ids=[case[0] for case in CHECK_TABLE],
)
def test_each_check_of_the_table_decides_in_its_order(given, facts, reason):
    decision = decide(given, facts)

    assert decision.reason == reason
    assert decision.status_code == rules.STATUS[reason]
    assert decision.accepted == (reason == Reason.ACCEPTED)
    assert decision.body(record_id=None)["reason"] == reason.value


def test_a_duplicate_event_is_told_before_a_missing_amount():
    decision = decide(
        params(event_name="purchase"),
        Facts(ClickFacts(11, has_conversion=True), duplicate_event=True),
    )

    assert decision.reason == Reason.DUPLICATE_EVENT


def test_an_unknown_duplicate_fact_is_assumed_absent_and_said_so():
    accepted = decide(params(event_id="100"), Facts(CONVERTED))
    refused_later = decide(params(event_name="purchase"), Facts(ClickFacts(11, True)))
    refused_before = decide(params(event_name="purchase"), Facts(FRESH))

    assert (accepted.reason, accepted.assumes_no_duplicate_event) == (Reason.ACCEPTED, True)
    assert (refused_later.reason, refused_later.assumes_no_duplicate_event) == (
        Reason.AMOUNT_REQUIRED,
        True,
    )
    assert (refused_before.reason, refused_before.assumes_no_duplicate_event) == (
        Reason.NO_CONVERSION,
        False,
    )


def test_a_refusal_after_check_10_says_which_records_it_assumed_absent():
    decision = decide(
        params(event_name="renew", adv_sub="order-2"), Facts(ClickFacts(11, has_conversion=True))
    )

    assert decision.reason == Reason.AMOUNT_REQUIRED
    assert decision.assumes_no_duplicate_event
    assert decision.duplicate_mode is DuplicateMode.SAME_ADV_SUB


@pytest.mark.parametrize(
    ("event", "adv_sub", "mode"),
    [
        (PURCHASE, "", DuplicateMode.ANY_RECORD),
        (PURCHASE, "order-1", DuplicateMode.ANY_RECORD),
        (RENEW, "order-1", DuplicateMode.SAME_ADV_SUB),
        (RENEW, "", DuplicateMode.NONE),
    ],
)
def test_which_records_make_an_event_a_duplicate_follows_the_event_setting(event, adv_sub, mode):
    assert rules.duplicate_mode(event, adv_sub) is mode


def test_a_repeatable_event_without_adv_sub_is_never_a_duplicate():
    decision = decide(params(event_name="renew"), Facts(CONVERTED, duplicate_event=True))

    assert decision.accepted
    assert not decision.assumes_no_duplicate_event


def test_what_an_insert_that_did_nothing_shows_is_the_duplicate_answer():
    conversion = rules.parse(params())
    event = rules.parse(params(event_id="100"))

    assert (
        rules.decide(
            conversion, rules.if_not_inserted(Facts(FRESH), RecordKind.CONVERSION), DEFS
        ).reason
        == Reason.DUPLICATE_CONVERSION
    )
    assert (
        rules.decide(event, rules.if_not_inserted(Facts(CONVERTED), RecordKind.EVENT), DEFS).reason
        == Reason.DUPLICATE_EVENT
    )


def test_the_log_links_what_the_request_resolved_to():
    nobody = decide(params(secure="z" * 43), Facts(FRESH))
    no_click = decide(params(), Facts(None))
    wrong_advertiser = decide(params(secure=TOKEN_B), Facts(FRESH))
    no_conversion = decide(params(event_name="purchase"), Facts(FRESH))

    assert (nobody.advertiser_id, nobody.offer_id) == (None, None)
    assert (no_click.advertiser_id, no_click.offer_id) == (1, None)
    assert (wrong_advertiser.advertiser_id, wrong_advertiser.offer_id) == (2, 10)
    assert (no_conversion.offer_id, no_conversion.event) == (10, PURCHASE)


# (case, offer or event, facts, parameters, revenue, payout, currency)
MONEY = [
    ("fixed conversion, no amount", FRESH, params(), "5.00", "3.00", "USD"),
    (
        "fixed conversion, amount kept, money fixed",
        FRESH,
        params(amount="99"),
        "5.00",
        "3.00",
        "USD",
    ),
    (
        "CPS conversion: a percentage, half-up to the cent",
        ClickFacts(11, False),
        params(amount="19.99"),
        "2.00",
        "1.00",
        "EUR",
    ),
    (
        "CPS conversion, half a cent rounds up",
        ClickFacts(11, False),
        params(amount="0.05"),
        "0.01",
        "0.00",
        "EUR",
    ),
    ("currency sent wins, upper-cased", FRESH, params(currency="gbp"), "5.00", "3.00", "GBP"),
    ("fixed event", CONVERTED, params(event_id="100"), "2.00", "1.00", "USD"),
    (
        "CPS event",
        ClickFacts(11, True),
        params(event_name="purchase", amount="100"),
        "10.00",
        "5.00",
        "EUR",
    ),
]


@pytest.mark.parametrize(
    ("click", "given", "revenue", "payout", "currency"),
    [case[1:] for case in MONEY],
    ids=[case[0] for case in MONEY],
)
def test_each_money_rule_earns_what_the_spec_says(click, given, revenue, payout, currency):
    decision = decide(given, Facts(click, duplicate_event=False))

    assert decision.accepted
    body = decision.body(record_id=7)
    assert (body["revenue"], body["payout"], body["currency"]) == (revenue, payout, currency)
    assert (decision.revenue, decision.payout) == (Decimal(revenue), Decimal(payout))


def test_a_prediction_on_the_cache_only_refuses_what_is_not_cached():
    cache = Definitions.of(offers=[OFFER_10])
    cached_only = cache.cached_only()
    parsed = rules.parse(params(event_id="100"))

    decision = rules.decide(parsed, Facts(CONVERTED), cached_only)

    assert decision.reason == Reason.UNKNOWN_EVENT
