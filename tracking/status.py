"""Record status (docs/postbacks.md "Approving and rejecting"): the state machine, the
change service and the status postback.

- ``transition_verdict`` is the one function that knows which changes are allowed, for
  whom: pure, over facts, tested table-driven without a database.
- ``follow_conversion`` is the rule "events follow their conversion": which of a
  conversion's events change, and to what, when the conversion changes.
- ``record_status_change`` is the service every path calls (status postback, admin, API):
  in one transaction it locks the record's conversion first (then the event record), reads
  the status the record has under that lock, asks ``transition_verdict``, writes the
  record, its history row and the events that follow. Two changes of one record (or an
  event being accepted for its conversion) therefore serialise, and the history never
  shows a change from a status the record no longer had.
- ``status_postback_process`` is ``GET``/``POST /postback/status``: checks 1 to 6 as on
  ``/postback`` (the same functions of tracking/rules.py), the status check table, the
  change and its log row in one transaction.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.db import OperationalError, transaction
from django.utils import timezone

from tracking import caps, postback, rules
from tracking.deliveries import deliveries_for_status_change
from tracking.models import (
    Conversion,
    EventRecord,
    PostbackLog,
    Reason,
    RecordStatus,
    StatusChange,
)
from tracking.sql import is_deadlock, on_postgresql, run

Source = StatusChange.Source
APPROVED, PENDING, REJECTED = RecordStatus.APPROVED, RecordStatus.PENDING, RecordStatus.REJECTED

#: Reasons the platform's own rules write (also what ``{status_reason}`` may carry).
CAP_REACHED = "cap_reached"
CONVERSION_REJECTED = "conversion_rejected"
CONVERSION_PENDING = "conversion_pending"
CONVERSION_APPROVED = "conversion_approved"

#: What an advertiser may send as ``status`` (lower case exactly; ``pending`` is not theirs).
ADVERTISER_STATUSES = (APPROVED.value, REJECTED.value)
REASON_LIMIT = 255

CHANGE, UNCHANGED, INVALID = "change", "unchanged", "invalid"
T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
    """What ``transition_verdict`` decided: ``change``, ``unchanged`` or ``invalid`` (with
    the message an advertiser or manager reads)."""

    outcome: str
    message: str = ""


def transition_verdict(
    *,
    source: str,
    is_event: bool,
    current: str,
    current_reason: str,
    target: str,
    conversion_status: str | None = None,
) -> Verdict:
    """Whether ``source`` may move a record from ``current`` to ``target``.

    ``conversion_status`` is the status of an event record's conversion (None for a
    conversion). The one place that knows the allowed transitions:

    - setting the status a record has is no change (``unchanged``: nothing is written);
    - an event record cannot be made approved or pending while its conversion is rejected,
      whoever asks;
    - advertisers (``postback``) may change pending → approved / rejected and approved →
      rejected; only an account manager reinstates a rejected record, and an advertiser
      cannot approve a record a cap holds (``cap_reached``);
    - account managers (``admin``, ``api``) and the platform's rules change anything else.
    """
    if target not in RecordStatus.values:
        return Verdict(INVALID, f"“{target}” is not a status: approved, pending or rejected.")
    if current == target:
        return Verdict(UNCHANGED, f"The record is already {target}.")
    if is_event and conversion_status == REJECTED and target != REJECTED and source != Source.RULE:
        return Verdict(
            INVALID,
            f"The event record's conversion is rejected: it cannot be made {target} until its "
            "conversion is reinstated.",
        )
    if source == Source.POSTBACK:
        if target == PENDING:
            return Verdict(INVALID, "Advertisers approve or reject; only a manager sets pending.")
        if current == REJECTED:
            return Verdict(
                INVALID,
                "The record is rejected; only an account manager can reinstate it.",
            )
        if target == APPROVED and current_reason == CAP_REACHED:
            return Verdict(
                INVALID,
                "The record is held by a cap (cap_reached); only an account manager can "
                "approve it.",
            )
    return Verdict(CHANGE)


@dataclass(frozen=True)
class EventFacts:
    """What ``follow_conversion`` needs of one event record."""

    id: int
    status: str
    by_rule: bool


def follow_conversion(
    *, conversion_status: str, events: Sequence[EventFacts]
) -> list[tuple[int, str, str]]:
    """The rule "events follow their conversion": ``(event record id, new status, reason)``
    for each of the conversion's events that changes now that the conversion is
    ``conversion_status``.

    → rejected: its approved and pending events become rejected (conversion_rejected).
    → approved: its events whose status this rule set become approved (conversion_approved).
    → pending: those and its approved events become pending (conversion_pending).
    """
    changes = []
    for event in events:
        if conversion_status == REJECTED:
            wanted, reason = event.status in (APPROVED, PENDING), CONVERSION_REJECTED
        elif conversion_status == APPROVED:
            wanted, reason = event.by_rule, CONVERSION_APPROVED
        else:
            wanted, reason = event.by_rule or event.status == APPROVED, CONVERSION_PENDING
        if wanted and event.status != conversion_status:
            changes.append((event.id, conversion_status, reason))
    return changes


@dataclass
class StatusResult:
    """What ``record_status_change`` did: ``outcome`` is ``updated``, ``unchanged`` or
    ``invalid_transition`` (a tracking.models.Reason value)."""

    outcome: str
    record: Conversion | EventRecord
    previous_status: str
    message: str = ""
    #: Event records that followed their conversion: (id, from, to).
    followed: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return isinstance(self.record, EventRecord)


def _locked(model: type, record_id: int) -> Conversion | EventRecord:
    """The record, its conversion locked first (docs/postbacks.md "Approving and
    rejecting": each change, and each event accepted for a conversion, locks the conversion
    first), so a conversion's change and its events' changes and acceptances queue in one
    order and cannot deadlock."""
    if model is Conversion:
        return Conversion.objects.select_for_update().get(pk=record_id)
    (conversion_id,) = EventRecord.objects.filter(pk=record_id).values_list(
        "conversion_id", flat=True
    )
    conversion = Conversion.objects.select_for_update().only("id", "status").get(pk=conversion_id)
    record = EventRecord.objects.select_for_update().get(pk=record_id)
    record.conversion = conversion
    return record


def record_status_change(
    *,
    record: Conversion | EventRecord | type,
    record_id: int | None = None,
    status: str,
    reason: str = "",
    source: str,
    user: Any = None,
) -> StatusResult:
    """Set a conversion's or event record's status, if ``transition_verdict`` allows it.

    ``record`` is the record (or its model class with ``record_id``); only its ID is used:
    the record is read again under its lock. In one transaction: the conversion is locked
    (an event record's, then the event record), the verdict taken on the status read under
    the lock, and for a change the record, a ``StatusChange`` row (from, to, reason, source,
    user) and — for a conversion — the events that follow it (each with its ``rule`` history
    row) written. An ``unchanged`` or ``invalid_transition`` result writes nothing. Callers
    that log (the status postback) call it inside their own transaction.
    """
    model = record if isinstance(record, type) else type(record)
    pk = record_id if record_id is not None else record.pk
    reason = (reason or "")[:REASON_LIMIT]
    change = functools.partial(_change, model, pk, status, reason, source, user)
    if transaction.get_connection().in_atomic_block:
        # No savepoint inside a caller's transaction (the status postback's, with its log
        # row): a failure rolls the whole of it back, and the caller retries it whole.
        with transaction.atomic(savepoint=False):
            return change()
    return retrying_deadlocks(change)


def retrying_deadlocks(work: Callable[[], T], *, attempts: int = 3) -> T:
    """Run ``work`` in a transaction of its own, again (up to ``attempts`` times) when
    PostgreSQL breaks a deadlock by aborting it.

    A change holds several row locks at once (the conversion, its events, and the hourly
    totals' rows its triggers update, old status then new), so two changes crossing each
    other (one approving what the other rejects, on the same offer and hour) can deadlock;
    PostgreSQL aborts one, which rolled back whole, is simply run again.
    """
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as exc:
            if attempt == attempts or not is_deadlock(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _change(model: type, pk: int, status: str, reason: str, source: str, user: Any) -> StatusResult:
    """``record_status_change`` inside its transaction."""
    locked = _locked(model, pk)
    is_event = model is EventRecord
    verdict = transition_verdict(
        source=source,
        is_event=is_event,
        current=locked.status,
        current_reason=locked.status_reason,
        target=status,
        conversion_status=locked.conversion.status if is_event else None,
    )
    previous = locked.status
    if verdict.outcome == UNCHANGED:
        return StatusResult(Reason.UNCHANGED, locked, previous, verdict.message)
    if verdict.outcome == INVALID:
        return StatusResult(Reason.INVALID_TRANSITION, locked, previous, verdict.message)
    now = timezone.now()
    _write(model, locked, status, reason, source=source, user=user, at=now, by_rule=False)
    followed = []
    if model is Conversion:
        followed = _follow(locked, at=now)
    return StatusResult(Reason.UPDATED, locked, previous, "", followed)


def _write(
    model: type,
    record: Conversion | EventRecord,
    status: str,
    reason: str,
    *,
    source: str,
    user: Any,
    at: Any,
    by_rule: bool,
) -> None:
    previous = record.status
    changed = {"status": status, "status_reason": reason, "status_changed_at": at}
    if model is EventRecord:
        changed["status_by_rule"] = by_rule
    # A cap counts approved records: its counter follows (tracking/caps.py).
    caps.follow_status(record, previous=previous, status=status)
    link = "event_record" if model is EventRecord else "conversion"
    change = StatusChange.objects.create(
        **{link: record},
        from_status=previous,
        to_status=status,
        reason=reason,
        source=source,
        user=user if getattr(user, "pk", None) else None,
        created_at=at,
    )
    # The publisher postbacks it fires, in this transaction (SPEC "Publisher postbacks").
    deliveries_for_status_change(record=record, change=change, now=at)
    # The record's row last: its hourly totals trigger locks a totals row that every change
    # and every new record of the offer's hour may want, held until this transaction
    # commits; taken last, it is held for the fewest statements. (The counters above come
    # before it, in the order every writer takes them: tracking/caps.py.)
    # Conditional on the status read under the lock: a belt to the lock's braces.
    updated = model.objects.filter(pk=record.pk, status=previous).update(**changed)
    if updated != 1:  # pragma: no cover - the row lock makes this unreachable
        raise RuntimeError(f"{model.__name__} {record.pk} changed under its lock")
    for name, value in changed.items():
        setattr(record, name, value)


def _follow(conversion: Conversion, *, at: Any) -> list[tuple[int, str, str]]:
    """Apply ``follow_conversion`` to the conversion's events (locked; found by the click,
    whose index eventrecord_click_event serves it: a conversion is one per click)."""
    events = list(
        EventRecord.objects.select_for_update()
        .filter(click_id=conversion.click_id)
        .order_by("id")
        .only(
            "id",
            "status",
            "status_by_rule",
            "status_reason",
            # What tracking/caps.py reads of a record whose status changes.
            "offer_id",
            "click_id",
            "publisher_id",
            "currency",
            "revenue",
            "payout",
            "created_at",
        )
    )
    facts = [EventFacts(e.id, e.status, e.status_by_rule) for e in events]
    by_id = {e.id: e for e in events}
    followed = []
    for event_id, status, reason in follow_conversion(
        conversion_status=conversion.status, events=facts
    ):
        event = by_id[event_id]
        previous = event.status
        _write(
            EventRecord, event, status, reason, source=Source.RULE, user=None, at=at, by_rule=True
        )
        followed.append((event_id, previous, status))
    return followed


# --- Previews for the admin's confirmation page -----------------------------------------------


@dataclass
class Preview:
    """What a bulk change would do, as the admin's confirmation page says it."""

    changing: int = 0
    unchanged: int = 0
    refused: int = 0
    #: currency → {"revenue", "payout"} of the records that change.
    money: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    #: Event records that would follow their conversions.
    following: int = 0


def status_change_preview(*, records: Sequence[Conversion | EventRecord], status: str) -> Preview:
    """How many of ``records`` an account manager's change to ``status`` would change, leave
    or refuse, and the money (per currency) that moves; read without locks (the change
    itself decides again under its lock)."""
    preview = Preview()
    conversions = {}
    events = [r for r in records if isinstance(r, EventRecord)]
    if events:
        conversions = dict(
            Conversion.objects.filter(pk__in={e.conversion_id for e in events}).values_list(
                "id", "status"
            )
        )
    changing_conversions = []
    for record in records:
        is_event = isinstance(record, EventRecord)
        verdict = transition_verdict(
            source=Source.ADMIN,
            is_event=is_event,
            current=record.status,
            current_reason=record.status_reason,
            target=status,
            conversion_status=conversions.get(record.conversion_id) if is_event else None,
        )
        if verdict.outcome == UNCHANGED:
            preview.unchanged += 1
        elif verdict.outcome == INVALID:
            preview.refused += 1
        else:
            preview.changing += 1
            money = preview.money.setdefault(
                record.currency, {"revenue": Decimal("0.00"), "payout": Decimal("0.00")}
            )
            money["revenue"] += record.revenue
            money["payout"] += record.payout
            if not is_event:
                changing_conversions.append(record.click_id)
    if changing_conversions:
        for click_id in changing_conversions:
            facts = [
                EventFacts(*row)
                for row in EventRecord.objects.filter(click_id=click_id).values_list(
                    "id", "status", "status_by_rule"
                )
            ]
            preview.following += len(follow_conversion(conversion_status=status, events=facts))
    return preview


# --- The status postback -----------------------------------------------------------------------

#: What the status postback reads beyond /postback's parameters.
STATUS_PARAMETERS = ("status", "reason", "record_id")
REQUIRED_PARAMETERS = ("secure", "transaction_id", "status")


@dataclass(frozen=True)
class StatusRequest:
    """The status postback's own parameters after checks 1 and 2."""

    status: str
    reason: str
    record_id: int | None


def check_status_required(params: Mapping[str, str]) -> None:
    """Check 1 of the status postback: ``secure``, ``transaction_id`` and ``status`` sent and
    not empty."""
    missing = [name for name in REQUIRED_PARAMETERS if not params.get(name)]
    if missing:
        raise rules.Refused(
            Reason.MISSING_PARAMETER,
            f"Missing parameter: {' and '.join(missing)} must be sent and not empty.",
        )


def check_status_well_formed(params: Mapping[str, str]) -> StatusRequest:
    """Check 2 for ``status``, ``reason`` and ``record_id`` (the rest is /postback's check 2):
    ``status`` is ``approved`` or ``rejected`` exactly; ``reason`` at most 255 characters
    without control characters; ``record_id`` a positive whole number."""
    status = params.get("status", "")
    if status not in ADVERTISER_STATUSES:
        raise rules._invalid(
            "status", "must be approved or rejected (lower case; pending is set by managers)"
        )
    reason = params.get("reason") or ""
    if len(reason) > REASON_LIMIT:
        raise rules._invalid("reason", f"longer than {REASON_LIMIT} characters")
    if not reason.isprintable() and rules.UNPRINTABLE_RE.search(reason):
        raise rules._invalid("reason", "holds a control character")
    record_id = rules._positive_int(params.get("record_id") or None, "record_id")
    return StatusRequest(status=status, reason=reason, record_id=record_id)


def pick_record(
    *, candidates: Sequence[int], by_record_id: bool, adv_sub: str, event_name: str
) -> int:
    """Which event record a status postback names, from the ``candidates`` the click has
    (those of the named event, with the ``adv_sub`` or ``record_id`` sent): exactly one, or
    ``unknown_record`` / ``ambiguous_record``."""
    if not candidates:
        sent = " with this record_id" if by_record_id else " with this adv_sub" if adv_sub else ""
        raise rules.Refused(
            Reason.UNKNOWN_RECORD,
            f"This transaction_id has no record of the event “{event_name}”{sent}.",
        )
    if len(candidates) > 1:
        raise rules.Refused(
            Reason.AMBIGUOUS_RECORD,
            f"This transaction_id has {len(candidates)} records of the event “{event_name}”: "
            "send the adv_sub of the one to change, or its record_id.",
        )
    return candidates[0]


def _target(
    params: rules.PostbackParams,
    request: StatusRequest,
    read: Any,
    links: Any,
    facts: rules.Facts,
) -> tuple[type, int]:
    """Checks 3 to 6 (/postback's own, so a check added there, such as the IP allow-list
    3a, holds here too), then the record the status postback names (the status check
    table's first three rows)."""
    click_facts, _offer = rules._click_checks(params, facts, read.defs, links)
    click = read.click

    if params.kind is not rules.RecordKind.EVENT and request.record_id is None:
        if click.conversion_id is None:
            raise rules.Refused(
                Reason.UNKNOWN_RECORD, "No conversion is recorded for this transaction_id."
            )
        return Conversion, click.conversion_id
    records = EventRecord.objects.filter(click_id=click.id)
    name = "named"
    if params.kind is rules.RecordKind.EVENT:
        by_id, by_name = rules.check_event_known(
            params, click_facts, read.defs.events(click.offer_id)
        )
        event = links.event = rules.check_event_matches(by_id, by_name)
        records = records.filter(event_id=event.id)
        name = event.name
    if request.record_id is not None:
        records = records.filter(pk=request.record_id)
    elif params.adv_sub:
        records = records.filter(adv_sub=params.adv_sub)
    # Two are enough to tell "ambiguous"; a few more make the message say how many.
    candidates = list(records.order_by("id").values_list("id", flat=True)[:100])
    record_id = pick_record(
        candidates=candidates,
        by_record_id=request.record_id is not None,
        adv_sub=params.adv_sub,
        event_name=name,
    )
    return EventRecord, record_id


def _decision(reason: Reason, message: str, params: Any, links: Any) -> rules.Decision:
    """The log row's view of a status postback's answer (type ``status``)."""
    return rules.Decision(
        reason,
        message,
        rules.RecordKind.STATUS,
        params=params,
        advertiser_id=links.advertiser_id,
        offer_id=links.offer_id,
        event=links.event,
    )


def _write_log(values: dict) -> int:
    if on_postgresql():
        ((log_id,),) = run(postback._insert_log_sql(), postback._sql_values(postback._LOG, values))
        return log_id
    return PostbackLog.objects.create(**values).pk


def status_postback_process(
    *,
    params: Mapping[str, str],
    method: str = "GET",
    ip: str | None = None,
    user_agent: str = "",
) -> postback.PostbackOutcome:
    """Decide a status postback (docs/postbacks.md "Status postback"), change the record if
    allowed, log it (type ``status``), and say what to answer.

    Checks 1 to 6 are /postback's (tracking/rules.py), with ``status`` required; then the
    record the request names, then ``record_status_change`` (source ``postback``). The
    change and its log row are written in one transaction; a refusal writes only its log
    row. Database errors propagate (the view answers ``503``).
    """
    request = postback._request(params, method, ip, user_agent)
    links = rules._Links()
    parsed = None
    read = None
    try:
        check_status_required(request.params)
        parsed = rules.check_well_formed(request.params)
        status_request = check_status_well_formed(request.params)
        read = postback._read_click(parsed.transaction_id)
        model, record_id = _target(parsed, status_request, read, links, read.facts(request))
    except rules.Refused as refusal:
        decision = _decision(refusal.reason, refusal.message, parsed, links)
        click = read.click if read is not None else None
        return postback._answer(request, decision, click=click, dry_run=False)

    def change_and_log() -> tuple[StatusResult, rules.Decision, int]:
        result = record_status_change(
            record=model,
            record_id=record_id,
            status=status_request.status,
            reason=status_request.reason,
            source=Source.POSTBACK,
        )
        decision = _decision(Reason(result.outcome), result.message, parsed, links)
        log = postback._log_values(request, decision, read.click, created_at=timezone.now())
        log |= {
            "reason": result.outcome,
            "status_code": decision.status_code,
            "message": "" if result.outcome == Reason.UPDATED else result.message[:500],
            "conversion_id": None if result.is_event else record_id,
            "event_record_id": record_id if result.is_event else None,
        }
        return result, decision, _write_log(log)

    # The change and its log row in one transaction, run again whole should PostgreSQL
    # abort it to break a deadlock.
    result, decision, log_id = retrying_deadlocks(change_and_log)
    record = result.record
    accepted = result.outcome in (Reason.UPDATED, Reason.UNCHANGED)
    body: dict[str, Any] = {
        "status": "accepted" if accepted else "rejected",
        "reason": result.outcome,
    }
    if result.message:
        body["message"] = result.message
    body |= {
        "type": rules.RecordKind.EVENT.value if result.is_event else "conversion",
        "id": record.pk,
        "transaction_id": parsed.transaction_id,
        "record_status": record.status,
        "record_status_reason": record.status_reason,
        "previous_record_status": result.previous_status,
    }
    return postback.PostbackOutcome(
        status_code=decision.status_code,
        reason=result.outcome,
        body=body,
        log_id=log_id,
        record_id=record.pk,
        is_event=result.is_event,
    )
