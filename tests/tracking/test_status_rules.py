"""The status rules as pure functions, table-driven, without a database: which transitions
each source may make, and which events follow their conversion."""

import pytest

from tests.tracking.test_rules import CONVERTED, DEFS, decide, params
from tracking.models import Reason
from tracking.rules import ClickFacts, Facts, Refused
from tracking.status import (
    CHANGE,
    INVALID,
    UNCHANGED,
    EventFacts,
    follow_conversion,
    pick_record,
    transition_verdict,
)

A, P, R = "approved", "pending", "rejected"

# (source, is_event, current, current_reason, target, conversion_status, outcome)
TRANSITIONS = [
    # Advertisers: pending → approved / rejected, approved → rejected.
    ("postback", False, P, "", A, None, CHANGE),
    ("postback", False, P, "", R, None, CHANGE),
    ("postback", False, A, "", R, None, CHANGE),
    ("postback", False, R, "", A, None, INVALID),  # only a manager reinstates
    ("postback", False, A, "", P, None, INVALID),  # pending is not theirs
    ("postback", False, P, "cap_reached", A, None, INVALID),  # held by a cap
    ("postback", False, P, "cap_reached", R, None, CHANGE),
    ("postback", False, A, "", A, None, UNCHANGED),
    ("postback", False, R, "", R, None, UNCHANGED),
    ("postback", True, P, "conversion_pending", A, P, CHANGE),
    ("postback", True, R, "", A, R, INVALID),
    ("postback", True, A, "", R, A, CHANGE),
    # Account managers: anything, but not an event of a rejected conversion back.
    ("admin", False, R, "", A, None, CHANGE),
    ("api", False, R, "", P, None, CHANGE),
    ("admin", False, A, "", P, None, CHANGE),
    ("api", False, P, "cap_reached", A, None, CHANGE),
    ("admin", True, R, "conversion_rejected", A, R, INVALID),
    ("api", True, R, "conversion_rejected", P, R, INVALID),
    ("admin", True, A, "", R, R, CHANGE),
    ("admin", True, R, "", A, A, CHANGE),
    ("admin", True, P, "", P, R, UNCHANGED),
    # The rule itself.
    ("rule", True, R, "conversion_rejected", A, A, CHANGE),
    ("rule", True, A, "", R, R, CHANGE),
    # Not a status at all.
    ("admin", False, A, "", "held", None, INVALID),
]


@pytest.mark.parametrize(
    ("source", "is_event", "current", "reason", "target", "conversion", "outcome"), TRANSITIONS
)
def test_each_source_may_make_exactly_its_transitions(
    source, is_event, current, reason, target, conversion, outcome
):
    verdict = transition_verdict(
        source=source,
        is_event=is_event,
        current=current,
        current_reason=reason,
        target=target,
        conversion_status=conversion,
    )
    assert verdict.outcome == outcome
    assert bool(verdict.message) == (outcome != CHANGE)


EVENTS = [
    EventFacts(1, A, False),  # approved by acceptance
    EventFacts(2, P, False),  # held (e.g. a cap or a manager)
    EventFacts(3, R, False),  # rejected by the advertiser or a manager
    EventFacts(4, R, True),  # rejected by this rule
    EventFacts(5, P, True),  # pending by this rule
    EventFacts(6, A, True),  # approved by this rule
]


@pytest.mark.parametrize(
    ("conversion_status", "expected"),
    [
        (
            R,
            [
                (1, R, "conversion_rejected"),
                (2, R, "conversion_rejected"),
                (5, R, "conversion_rejected"),
                (6, R, "conversion_rejected"),
            ],
        ),
        (A, [(4, A, "conversion_approved"), (5, A, "conversion_approved")]),
        (
            P,
            [
                (1, P, "conversion_pending"),
                (4, P, "conversion_pending"),
                (6, P, "conversion_pending"),
            ],
        ),
    ],
)
def test_events_follow_their_conversion(conversion_status, expected):
    assert follow_conversion(conversion_status=conversion_status, events=EVENTS) == expected


@pytest.mark.parametrize(
    ("candidates", "result"),
    [([], "unknown_record"), ([7], 7), ([7, 8], "ambiguous_record")],
)
def test_a_status_postback_names_exactly_one_record(candidates, result):
    try:
        picked = pick_record(candidates=candidates, by_record_id=False, adv_sub="", event_name="x")
    except Refused as rejection:
        picked = rejection.reason.value
    assert picked == result


# --- The postback path's status rules (tracking/rules.py) ---------------------------------


def converted(status: str) -> ClickFacts:
    return ClickFacts(offer_id=10, has_conversion=True, conversion_status=status)


# (case, parameters, facts, reason, record status, status reason, set by the rule)
EVENT_STATUS_TABLE = [
    (
        "approved conversion",
        params(event_id="100"),
        Facts(converted(A)),
        Reason.ACCEPTED,
        A,
        "",
        False,
    ),
    (
        "pending conversion",
        params(event_id="100"),
        Facts(converted(P)),
        Reason.ACCEPTED,
        P,
        "conversion_pending",
        True,
    ),
    (
        "rejected conversion: 10a",
        params(event_id="100"),
        Facts(converted(R)),
        Reason.CONVERSION_REJECTED,
        None,
        None,
        None,
    ),
    (
        "rejected conversion, a duplicate: 10 before 10a",
        params(event_id="100"),
        Facts(converted(R), duplicate_event=True),
        Reason.DUPLICATE_EVENT,
        None,
        None,
        None,
    ),
    (
        "rejected conversion, CPS without amount: 10a before 11",
        params(event_id="110", offer_id="11"),
        Facts(ClickFacts(offer_id=11, has_conversion=True, conversion_status=R)),
        Reason.CONVERSION_REJECTED,
        None,
        None,
        None,
    ),
    (
        "no conversion: 9 first",
        params(event_id="100"),
        Facts(ClickFacts(10, False)),
        Reason.NO_CONVERSION,
        None,
        None,
        None,
    ),
    (
        "a conversion is recorded approved",
        params(),
        Facts(ClickFacts(10, False)),
        Reason.ACCEPTED,
        A,
        "",
        False,
    ),
]


@pytest.mark.parametrize(
    ("case", "given", "facts", "reason", "status", "status_reason", "by_rule"),
    EVENT_STATUS_TABLE,
    ids=[row[0] for row in EVENT_STATUS_TABLE],
)
def test_an_accepted_record_takes_its_status_from_its_conversion(
    case, given, facts, reason, status, status_reason, by_rule
):
    decision = decide(given, facts)
    assert decision.reason == reason
    if reason == Reason.ACCEPTED:
        assert (decision.record_status, decision.record_status_reason, decision.status_by_rule) == (
            status,
            status_reason,
            by_rule,
        )
        body = decision.body(record_id=1)
        assert (body["record_status"], body["record_status_reason"]) == (status, status_reason)
    else:
        assert decision.status_code in (409, 422)


def test_a_conversion_rejected_refusal_is_a_422():
    decision = decide(params(event_id="100"), Facts(converted(R)))
    assert decision.status_code == 422
    assert decision.body(record_id=None)["reason"] == "conversion_rejected"
    assert CONVERTED.conversion_status is None  # the engine's own table: approved records
    assert DEFS.offer(10) is not None
