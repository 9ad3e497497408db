"""The status rules as pure functions, table-driven, without a database: which transitions
each source may make, and which events follow their conversion."""

import pytest

from tracking.rules import Refused
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
