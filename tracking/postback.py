"""The postback writer (docs/postbacks.md): read the facts, decide, write.

The rules are in ``tracking/rules.py`` (docs/postbacks.md's check table, one pure function
per check). This module reads what they need, asks ``rules.decide`` and writes what it
answers: a rejected postback writes only its log row; an accepted one writes its record
and its log row together. "Exactly once" is the database's job: the unique constraints on
``Conversion`` and ``EventRecord`` decide every duplicate the read before the write cannot
see (a race), and the duplicate's answer is the rules' own, asked with the fact the insert
showed (``rules.if_not_inserted``).

On PostgreSQL the statements are hand-written (``tracking/sql.py``) and a postback costs at
most two round trips, whatever the answer: the click, its conversion's ID and the
definitions version in one read (the tokens and the offers' and events' rules come from
offers.definitions, cached per process and exact for that version); then one statement
that writes the record and its log row, or only the log row. An accepted postback is
usually one round trip: see "The one-statement path" below. On other databases the writer
uses the ORM, in one transaction.

The view (``tracking/views.py``) only merges the query string and the form body into
``params`` and renders the outcome; the admin's "Test postback" tab calls the same function,
with ``dry_run=True`` to see the decision without writing anything.
"""

import functools
import json
import random
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from offers.caps import local_day, period_start
from offers.definitions import (
    CapDefinition,
    Definitions,
    cached_definitions,
    current_version,
    definitions,
    version_sql,
)
from offers.models import CapCounter, Event
from offers.tokens import mask_token
from tracking import caps, rules
from tracking.deliveries import (
    DeliveryRows,
    DeliveryShape,
    RecordFacts,
    deliveries_write,
    delivery_cte_sql,
    delivery_rows,
    winning_postbacks,
)
from tracking.masking import TokenMask, token_mask
from tracking.models import (
    Click,
    Conversion,
    EventRecord,
    KeptPostback,
    PostbackLog,
    Reason,
    RecordStatus,
)
from tracking.rules import (
    PARAMETERS,
    UNPRINTABLE_RE,
    ClickFacts,
    Decision,
    DuplicateMode,
    Facts,
    PostbackParams,
    RecordKind,
)
from tracking.sql import Row, given_rows_sql, is_deadlock, on_postgresql, run

__all__ = ["PARAMETERS", "PostbackOutcome", "postback_process", "postback_unreadable"]

# What the log keeps of a request, so a hostile request cannot make a huge log row.
LOG_PARAMETER_LIMIT = 50
LOG_NAME_LIMIT = 64
LOG_VALUE_LIMIT = 255

# The format every click's transaction_id has (Click's check constraint): anything else
# cannot be a click, so it is not looked up.
_TRANSACTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")

#: The most offers a postback that does not name its offer is tried against in one
#: statement (the token's advertiser's offers: those with an event of that name, or all of
#: them for a conversion). Each candidate costs a decision in Python and an element of the
#: statement's arrays on every such postback, while a miss costs one more round trip only
#: once: past this many, the two round trips of the ordinary path are the cheaper bet.
MAX_CANDIDATES = 64


@dataclass(frozen=True)
class PostbackOutcome:
    status_code: int  # the HTTP status the endpoint answers
    reason: str  # a tracking.models.Reason value
    body: dict  # the JSON answer exactly as the endpoint sends it
    log_id: int | None = None  # the log row written (None for a dry run)
    record_id: int | None = None  # what was accepted (None if rejected or a dry run)
    is_event: bool = False

    @property
    def log(self) -> PostbackLog | None:
        """The log row written, read back (for the admin and tests; the endpoint needs none)."""
        return PostbackLog.objects.get(pk=self.log_id) if self.log_id else None

    @property
    def record(self) -> Conversion | EventRecord | None:
        """The conversion or event record written, read back."""
        if self.record_id is None:
            return None
        return (EventRecord if self.is_event else Conversion).objects.get(pk=self.record_id)


@dataclass(frozen=True, slots=True)
class _Request:
    """What the log row keeps of the request, whatever the answer."""

    params: dict[str, str]
    method: str
    ip: str | None
    user_agent: str
    check_allow_list: bool = True
    #: The time the postback is judged at (check 7a) and its records and log row carry.
    now: datetime = field(default_factory=timezone.now)


@dataclass(frozen=True, slots=True)
class _Click:
    """The click as read: its facts for the rules, and what the record copies from it."""

    id: int
    offer_id: int
    publisher_id: int
    conversion_id: int | None
    conversion_status: str | None = None
    created_at: datetime | None = None
    is_test: bool = False

    @property
    def facts(self) -> ClickFacts:
        return ClickFacts(
            offer_id=self.offer_id,
            has_conversion=self.conversion_id is not None,
            conversion_status=self.conversion_status,
            created_at=self.created_at,
            is_test=self.is_test,
            publisher_id=self.publisher_id,
        )


@dataclass(frozen=True, slots=True)
class _Read:
    """What a statement read: the definitions at its version, and the click (or None)."""

    defs: Definitions
    click: _Click | None

    def facts(self, request: "_Request") -> Facts:
        return Facts(
            click=self.click.facts if self.click is not None else None,
            ip=request.ip,
            check_allow_list=request.check_allow_list,
            now=request.now,
        )


def postback_process(
    *,
    params: Mapping[str, str],
    method: str = "GET",
    ip: str | None = None,
    user_agent: str = "",
    dry_run: bool = False,
    check_allow_list: bool = True,
) -> PostbackOutcome:
    """Decide a postback, record it if accepted, log it, and say what to answer.

    ``params`` is the merged parameter dict (the view merges the query string and the form
    body). The checks of docs/postbacks.md run in order (``tracking.rules``); the first that
    fails decides. Writes the record and its log row together when accepted, only the log
    row when rejected, and nothing at all when ``dry_run`` (the body then carries
    ``"id": null`` where it would accept). Database errors other than a lost race
    propagate: the caller answers ``503`` for an unreachable database.
    """
    request = _request(params, method, ip, user_agent, check_allow_list=check_allow_list)
    parsed = rules.parse(request.params)
    if isinstance(parsed, Decision):  # checks 1 and 2
        return _answer(request, parsed, click=None, dry_run=dry_run)

    attempt = _Attempt() if dry_run else _accept_at_once(request, parsed)
    if attempt.outcome is not None:
        return _after(attempt.outcome)
    read = attempt.read or _read_click(parsed.transaction_id)
    if (
        parsed.kind is RecordKind.EVENT
        and not dry_run
        and not on_postgresql()
        and read.click is not None
        and read.click.conversion_id is not None
    ):
        # Accepting an event locks its conversion first (docs/postbacks.md "Approving and
        # rejecting"): its status is read again inside the write's transaction and decided on.
        # (On PostgreSQL the write statement itself locks the conversion: see _write_sql.)
        with transaction.atomic():
            return _decide_and_write(request, parsed, _with_locked_conversion(read), False)
    outcome = _decide_and_write(request, parsed, read, dry_run)
    return outcome if dry_run else _after(outcome)


def _after(outcome: PostbackOutcome) -> PostbackOutcome:
    """A conversion just recorded: its click's kept early events are judged now
    (tracking/kept.py), if its offer has events that wait (known from the definitions)."""
    if outcome.reason != Reason.ACCEPTED or outcome.is_event:
        return outcome
    offer_id = outcome.body["offer_id"]
    # The offer's events from the definitions cache (one query per version and process);
    # without a cache (SQLite), a query.
    defs = cached_definitions()
    if defs is None:
        waits = Event.objects.filter(offer_id=offer_id, wait_for_conversion_minutes__gt=0).exists()
    else:
        waits = defs.events(offer_id).any_waits
    if waits:
        from tracking import kept  # noqa: PLC0415 - kept imports this module

        click_id = Conversion.objects.values_list("click_id", flat=True).get(pk=outcome.record_id)
        kept.judge_click(click_id)
    return outcome


def _keep(request: _Request, decision: Decision, click: _Click) -> PostbackOutcome:
    """Keep an early event (docs/postbacks.md "Early events"): its log row (202
    ``waiting_for_conversion``) and its kept row together. Should the conversion have been
    recorded meanwhile, it is judged at once (whoever locks it first decides it)."""
    from tracking import kept  # noqa: PLC0415 - kept imports this module

    with transaction.atomic():
        log = _log_values(request, decision, click, created_at=request.now)
        log_id = PostbackLog.objects.create(**(log | _log_outcome(decision))).pk
        KeptPostback.objects.create(
            **kept.kept_values(decision, click_id=click.id, log_id=log_id, at=request.now)
        )
    if Conversion.objects.filter(click_id=click.id).exists():
        kept.judge_click(click.id)
    return _outcome(decision, log_id=log_id, record_id=None)


def _decide_and_write(
    request: _Request, parsed: PostbackParams, read: _Read, dry_run: bool
) -> PostbackOutcome:
    """Checks 3 to 12 on what was read, then the write (or the refusal's log row)."""
    facts = read.facts(request)
    decision = rules.decide(parsed, facts, read.defs)
    if parsed.offer_id is None and parsed.event_id is None and on_postgresql():
        _learn_candidates(read.defs, decision)
    # Check 10's fact is left to the write, which makes it the insert's condition. Where no
    # insert will be tried (a later check refused, a dry run) or the ORM writes, it is read.
    if decision.assumes_no_duplicate_event and (
        not decision.accepted or dry_run or not on_postgresql()
    ):
        assert read.click is not None and decision.event is not None
        facts = replace(facts, duplicate_event=_has_duplicate(read.click, decision))
        decision = rules.decide(parsed, facts, read.defs)

    if dry_run and decision.accepted and decision.caps:
        # The dry run shows the status the caps would give the record, as they stand now.
        status, reason, by_rule = caps.preview(decision, created_at=request.now)
        decision = replace(
            decision, record_status=status, record_status_reason=reason, status_by_rule=by_rule
        )
    if decision.reason == Reason.WAITING_FOR_CONVERSION and not dry_run:
        assert read.click is not None
        return _keep(request, decision, read.click)
    if not decision.accepted or dry_run:
        return _answer(request, decision, click=read.click, dry_run=dry_run)
    assert read.click is not None
    # The answer should the insert do nothing: the fact it assumed was not so. (For an event
    # that allows multiple, sent without adv_sub, nothing can stop the insert.)
    otherwise = rules.decide(parsed, rules.if_not_inserted(facts, decision.kind), read.defs)
    now = request.now
    fired = _fired(decision, read.defs, publisher_id=read.click.publisher_id, now=now)
    if decision.caps:
        # The record, its log row, its caps' counters and (approved after all) its
        # deliveries in one transaction. The caps may hold the record pending or reject
        # it, so its deliveries are written once they have had their say.
        with transaction.atomic():
            caps.counters_lock(decision.caps, day=local_day(now))
            no_deliveries = DeliveryRows([], [], [], [], [])
            written = _write_any(request, decision, otherwise, read.click, no_deliveries, now)
            if isinstance(written, PostbackOutcome) and written.record_id is not None:
                return _with_caps(written, decision, created_at=now, click=read.click, fired=fired)
    else:
        written = _write_any(request, decision, otherwise, read.click, fired, now)
    if isinstance(written, str):
        # The conversion's status changed between the read and the write: decide again on
        # the status the write found (under its lock).
        click = replace(read.click, conversion_status=written)
        return _decide_and_write(request, parsed, replace(read, click=click), dry_run)
    return written


def _write_any(
    request: _Request,
    decision: Decision,
    otherwise: Decision,
    click: _Click,
    fired: DeliveryRows,
    now: datetime,
) -> PostbackOutcome | str:
    if not on_postgresql():
        return _write_with_orm(request, decision, otherwise, click, fired, now)
    return _write(request, decision, otherwise, click, fired, now)


def _with_caps(
    written: PostbackOutcome,
    decision: Decision,
    *,
    created_at: datetime,
    click: _Click,
    fired: DeliveryRows,
) -> PostbackOutcome:
    """The record just written takes its caps' slots (tracking/caps.py); where that changes
    the status its rules gave it (a cap is full), the record says so before anyone sees it
    (its first status: no history entry). Only a record the caps leave approved fires its
    publisher deliveries now (``fired``, in the caller's transaction); a capped one fires
    on its first approval (tracking/status.py)."""
    assert decision.params is not None and written.record_id is not None
    status, reason, by_rule = caps.take_slots(decision, created_at=created_at)
    if status == RecordStatus.APPROVED and fired:
        deliveries_write(
            rows=fired,
            link=_LINKS[decision.kind],
            click_id=click.id,
            record_id=written.record_id,
            record_created_at=created_at,
            now=created_at,
        )
    if (status, reason) == (decision.record_status, decision.record_status_reason):
        return written
    changed = {"status": status, "status_reason": reason}
    model = Conversion
    if decision.kind is RecordKind.EVENT:
        model, changed["status_by_rule"] = EventRecord, by_rule
    model.objects.filter(pk=written.record_id).update(**changed)
    capped = replace(
        decision, record_status=status, record_status_reason=reason, status_by_rule=by_rule
    )
    return replace(written, body=capped.body(record_id=written.record_id))


def deliveries_for_kept(
    decision: Decision, *, click_id: int, publisher_id: int, record_id: int, now: datetime
) -> None:
    """The publisher deliveries of an early event's record, judged when its conversion came
    (tracking/kept.py) and recorded at ``now``, in the caller's transaction: only where it
    was recorded approved
    (``decision`` carries the status its caps left it); otherwise its first approval fires
    them (tracking/status.py)."""
    if decision.record_status != RecordStatus.APPROVED:
        return
    defs = definitions(version=current_version())
    fired = _fired(decision, defs, publisher_id=publisher_id, now=now)
    if fired:
        deliveries_write(
            rows=fired,
            link=_LINKS[decision.kind],
            click_id=click_id,
            record_id=record_id,
            record_created_at=now,
            now=now,
        )


def postback_unreadable(
    *,
    method: str,
    ip: str | None,
    user_agent: str,
    message: str,
    params: Mapping[str, str],
    kind: RecordKind | None = None,
    reason: Reason = Reason.INVALID_PARAMETER,
) -> PostbackOutcome:
    """Log and answer a request whose parameters could not be read at all.

    For requests Django refuses to parse (too many fields, a body over the upload limit, a
    broken multipart body): they are still postback requests, so they get their log row and
    a ``400 invalid_parameter`` (``413 request_too_large`` for a body over the limit).
    ``params`` holds whatever could be read (often nothing); ``kind`` is
    ``RecordKind.STATUS`` for the status postback (its log rows say so).
    """
    request = _request(params, method, ip, user_agent)
    decision = rules.unreadable(message, kind, reason)
    return _answer(request, decision, click=None, dry_run=False)


def _request(
    params: Mapping[str, str],
    method: str,
    ip: str | None,
    user_agent: str,
    *,
    check_allow_list: bool = True,
) -> _Request:
    params = {str(name): "" if value is None else str(value) for name, value in params.items()}
    return _Request(params, method, ip, user_agent, check_allow_list)


def _outcome(decision: Decision, *, log_id: int | None, record_id: int | None) -> PostbackOutcome:
    return PostbackOutcome(
        status_code=decision.status_code,
        reason=decision.reason,
        body=decision.body(record_id=record_id),
        log_id=log_id,
        record_id=record_id,
        is_event=decision.kind is RecordKind.EVENT,
    )


# --- Reads ---------------------------------------------------------------------------------

# The click, its conversion's ID and the definitions version, in one row even when no click
# has this transaction_id. Serves: tracking_click's unique index on transaction_id, then
# conversion_one_per_click.
_CLICK_SQL = """
SELECT {version}, c.id, c.offer_id, c.publisher_id, v.id, v.status, {created_at}, c.is_test
FROM (SELECT 1) AS one
LEFT JOIN tracking_click c ON c.transaction_id = %(transaction_id)s
LEFT JOIN tracking_conversion v ON v.click_id = c.id
"""


@functools.cache
def _click_sql() -> str:
    return _CLICK_SQL.format(version=version_sql(), created_at=_microseconds_sql("c.created_at"))


def _microseconds_sql(moment: str) -> str:
    """A click's time as it is read on PostgreSQL: whole microseconds since the epoch
    (``_click_of``). An integer is read for a fraction of what a ``timestamptz`` costs
    psycopg, which sets up a time-zone-aware loader for every result that has one."""
    return f"(extract(epoch FROM {moment}) * 1000000)::bigint"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _click_of(
    click_id: int,
    offer_id: int,
    publisher_id: int,
    conversion_id: int | None,
    conversion_status: str | None,
    created_us: int | None,
    is_test: bool,
) -> _Click:
    """The click of a PostgreSQL read, its time given in microseconds (``_microseconds_sql``)."""
    created_at = None if created_us is None else _EPOCH + timedelta(microseconds=created_us)
    return _Click(
        click_id, offer_id, publisher_id, conversion_id, conversion_status, created_at, is_test
    )


def _read_click(transaction_id: str) -> _Read:
    """The facts of checks 4 to 9 and the definitions current for this request."""
    # A transaction_id of another format cannot be a click's (the read still brings the
    # version).
    known_format = _TRANSACTION_ID_RE.fullmatch(transaction_id) is not None
    if not on_postgresql():
        row = (
            Click.objects.filter(transaction_id=transaction_id)
            .values_list("id", "offer_id", "publisher_id", "created_at", "is_test")
            .first()
            if known_format
            else None
        )
        if row is None:
            return _Read(definitions(version=None), None)
        click_id, offer_id, publisher_id, created_at, is_test = row
        conversion = (
            Conversion.objects.filter(click_id=click_id).values_list("id", "status").first()
        )
        click = _Click(
            click_id, offer_id, publisher_id, *(conversion or (None, None)), created_at, is_test
        )
        return _Read(definitions(version=None), click)
    ((version, click_id, *click),) = run(
        _click_sql(), {"transaction_id": transaction_id if known_format else None}
    )
    return _Read(
        definitions(version=version), None if click_id is None else _click_of(click_id, *click)
    )


def _with_locked_conversion(read: _Read) -> _Read:
    """``read`` with its click's conversion's status read again inside the write's
    transaction (the ORM path: SQLite's write transactions run one at a time, so no status
    change can come between this read and the write)."""
    click = read.click
    assert click is not None and click.conversion_id is not None
    status = Conversion.objects.values_list("status", flat=True).get(pk=click.conversion_id)
    return replace(read, click=replace(click, conversion_status=status))


def _has_duplicate(click: _Click, decision: Decision) -> bool:
    """Event check 10's fact, read on its own: does the click have a record of the event
    that makes this postback a duplicate (``decision.duplicate_mode``)? Serves:
    eventrecord_click_event. (Rare: only where the write will not decide it.)"""
    assert decision.event is not None and decision.params is not None
    records = EventRecord.objects.filter(click_id=click.id, event_id=decision.event.id)
    if decision.duplicate_mode is DuplicateMode.SAME_ADV_SUB:
        records = records.filter(adv_sub=decision.params.adv_sub)
    return records.exists()


def _click_records_sql(click: str) -> str:
    """The click's event records (``event_id``, ``adv_sub``) as a CTE body, found by the
    click alone: serves eventrecord_click_event whatever the planner thinks of the event's
    record count (probed by event as well, a plan made while the table was small scanned
    the event's every record per postback)."""
    return (
        "SELECT event_id, adv_sub FROM tracking_eventrecord "  # noqa: S608 - names only
        f"WHERE click_id = {click}"
    )


def _no_duplicate_sql(*, event: str, mode: str) -> str:
    """Event check 10's fact as an SQL condition: the click has no record of the event that
    makes this postback a duplicate (``mode`` an expression giving a ``DuplicateMode``),
    over the statement's ``click_records`` CTE (``_click_records_sql``)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM click_records r WHERE r.event_id = {event} "  # noqa: S608
        f"AND {mode} <> '{DuplicateMode.NONE.value}' "
        f"AND ({mode} = '{DuplicateMode.ANY_RECORD.value}' OR r.adv_sub = %(adv_sub)s))"
    )


# --- Writes --------------------------------------------------------------------------------

_LOG = Row(PostbackLog)
_LOG_OUTCOME = ("reason", "status_code", "message", "conversion_id", "event_record_id")
_LOG_WITH_RECORD = Row(PostbackLog, exclude=_LOG_OUTCOME, prefix="log_")
_RECORDS = {RecordKind.CONVERSION: Row(Conversion), RecordKind.EVENT: Row(EventRecord)}
_LINKS = {RecordKind.CONVERSION: "conversion_id", RecordKind.EVENT: "event_record_id"}


def _record_values(decision: Decision, click: _Click | None, *, created_at: datetime) -> dict:
    """The record an accepted decision writes (the click's columns left out when ``click``
    is None: the one-statement path takes them from its own read)."""
    params = decision.params
    assert params is not None
    record = {
        "offer_id": decision.offer_id,
        "revenue": decision.revenue,
        "payout": decision.payout,
        "currency": decision.currency,
        "amount": params.amount,
        **params.adv_subs,
        "created_at": created_at,
        "status": decision.record_status,
        "status_reason": decision.record_status_reason,
        "status_changed_at": created_at,
    }
    if click is not None:
        record |= {"click_id": click.id, "publisher_id": click.publisher_id}
    if decision.event is not None:
        record |= {
            "event_id": decision.event.id,
            "allow_multiple": decision.event.allow_multiple,
            "status_by_rule": decision.status_by_rule,
        }
        if click is not None:
            record["conversion_id"] = click.conversion_id
    return record


def _log_values(
    request: _Request, decision: Decision, click: _Click | None, *, created_at: datetime
) -> dict:
    """The request's log row but its outcome: every parameter (``secure`` masked), and what
    the request resolved to (the click once check 4 passed)."""
    params = request.params
    linked = click if decision.offer_id is not None else None
    # Tokens by value, wherever they were sent (tracking/masking.py); a request that resolved
    # no advertiser may have read nothing, so it reads the current tokens.
    mask = token_mask(fresh=decision.advertiser_id is None)
    return {
        "created_at": created_at,
        "method": printable(request.method)[:10],
        "params": loggable_params(params, mask),
        "secure_masked": printable(mask_token(params.get("secure", "")))[:32],
        "ip": request.ip or None,
        "user_agent": printable(mask(request.user_agent))[:512],
        "type": decision.kind.value if decision.kind else "",
        "transaction_id": printable(mask(params.get("transaction_id", "")))[:255],
        "advertiser_id": decision.advertiser_id,
        "offer_id": decision.offer_id,
        "event_id": decision.event.id if decision.event is not None else None,
        "click_id": linked.id if linked is not None else None,
        # Set later, only for a kept early event (docs/postbacks.md "Early events").
        "decided_at": None,
        "final_status_code": None,
        "final_reason": "",
    }


def _log_outcome(decision: Decision, record_id: int | None = None) -> dict:
    """The log row's outcome columns."""
    return {
        "reason": decision.reason.value,
        "status_code": decision.status_code,
        "message": token_mask()(decision.message)[:500],
        "conversion_id": record_id if decision.kind is RecordKind.CONVERSION else None,
        "event_record_id": record_id if decision.kind is RecordKind.EVENT else None,
    }


def _sql_values(row: Row, values: dict) -> dict:
    """``values`` bound for ``row``; the JSON column arrives encoded (its column takes text)."""
    if "params" in values:
        values = values | {"params": json.dumps(values["params"])}
    return row.values(values)


@functools.cache
def _insert_log_sql() -> str:
    return f"INSERT INTO {_LOG.table} ({_LOG.columns}) VALUES ({_LOG.select_list}) RETURNING id"  # noqa: S608


def _answer(
    request: _Request, decision: Decision, *, click: _Click | None, dry_run: bool
) -> PostbackOutcome:
    """Answer a decision that writes no record (a refusal, or any dry run); unless a dry
    run, write its log row (its own autocommit insert)."""
    log_id = None
    if not dry_run:
        log = _log_values(request, decision, click, created_at=request.now)
        log |= _log_outcome(decision)
        if on_postgresql():
            ((log_id,),) = run(_insert_log_sql(), _sql_values(_LOG, log))
        else:
            log_id = PostbackLog.objects.create(**log).pk
    return _outcome(decision, log_id=log_id, record_id=None)


@functools.cache
def _write_sql(kind: RecordKind, deliveries: DeliveryShape | None = None) -> str:
    """One statement (a data-modifying CTE, atomic by itself, one round trip) that writes
    the record and its log row: ``accepted`` linking the record when it was inserted, else
    the answer the caller computed for that case.

    The insert's conditions are the facts the decision assumed: for an event, that the
    click has no record making it a duplicate (check 10), and that its conversion has the
    status it was decided on (check 10a, the record's status), read under the conversion's
    lock: accepting an event locks its conversion first (docs/postbacks.md "Approving and
    rejecting"). Where that status is no longer so, nothing is written and the statement
    returns the status it found (the caller decides again on it). ``ON CONFLICT DO
    NOTHING`` lets the unique constraints decide a race that reading cannot see (two
    requests at once: exactly one inserts).
    """
    record, log = _RECORDS[kind], _LOG_WITH_RECORD
    link = _LINKS[kind]
    # The publisher deliveries the record fires, in the same statement (tracking/deliveries.py).
    delivery = ""
    if deliveries is not None:
        click_id = "%(click_id)s::bigint"
        delivery = f", {delivery_cte_sql(link.removesuffix('_id'), click_id, deliveries)}"
    if kind is not RecordKind.EVENT:
        return f"""
WITH record AS (
    INSERT INTO {record.table} ({record.columns})
    SELECT {record.select_list}
    ON CONFLICT DO NOTHING RETURNING id, created_at
){delivery}
INSERT INTO {log.table} ({log.columns}, reason, status_code, message, {link})
SELECT {log.select_list},
       CASE WHEN record.id IS NULL THEN %(otherwise_reason)s ELSE 'accepted' END,
       CASE WHEN record.id IS NULL THEN %(otherwise_status)s::smallint ELSE 200 END,
       CASE WHEN record.id IS NULL THEN %(otherwise_message)s ELSE '' END,
       record.id
FROM (SELECT 1) AS one LEFT JOIN record ON TRUE
RETURNING id, {link}, NULL::text
"""  # noqa: S608 - only names and constants are interpolated
    no_duplicate = _no_duplicate_sql(event="%(event_id)s", mode="%(mode)s::text")
    as_decided = "(SELECT status FROM locked) = %(conversion_status)s::text"
    return f"""
WITH locked AS (
    SELECT status FROM tracking_conversion WHERE id = %(conversion_id)s FOR SHARE
), click_records AS MATERIALIZED (
    {_click_records_sql("%(click_id)s")}
), record AS (
    INSERT INTO {record.table} ({record.columns})
    SELECT {record.select_list} WHERE {no_duplicate} AND {as_decided}
    ON CONFLICT DO NOTHING RETURNING id, created_at
){delivery}, log AS (
    INSERT INTO {log.table} ({log.columns}, reason, status_code, message, {link})
    SELECT {log.select_list},
           CASE WHEN record.id IS NULL THEN %(otherwise_reason)s ELSE 'accepted' END,
           CASE WHEN record.id IS NULL THEN %(otherwise_status)s::smallint ELSE 200 END,
           CASE WHEN record.id IS NULL THEN %(otherwise_message)s ELSE '' END,
           record.id
    FROM (SELECT 1) AS one LEFT JOIN record ON TRUE
    WHERE record.id IS NOT NULL OR {as_decided}
    RETURNING id, {link}
)
SELECT (SELECT id FROM log), (SELECT {link} FROM log), (SELECT status FROM locked)
"""  # noqa: S608 - only names and constants are interpolated


def _write(
    request: _Request,
    decision: Decision,
    otherwise: Decision,
    click: _Click,
    fired: DeliveryRows,
    now: datetime,
) -> PostbackOutcome | str:
    """Write an accepted decision, the publisher deliveries it fires (``fired``) and its
    log row in one statement (PostgreSQL); where the insert does nothing, ``otherwise`` is
    the answer, logged in the same statement. For an event whose conversion's status is no
    longer the one decided on, nothing is written: that status is returned, to decide
    again on."""
    values = _sql_values(_RECORDS[decision.kind], _record_values(decision, click, created_at=now))
    values |= _sql_values(_LOG_WITH_RECORD, _log_values(request, decision, click, created_at=now))
    values |= {
        "mode": decision.duplicate_mode.value,
        "otherwise_reason": otherwise.reason.value,
        "otherwise_status": otherwise.status_code,
        "otherwise_message": token_mask()(otherwise.message)[:500],
        "conversion_status": click.conversion_status,
    }
    if fired:
        values |= fired.params(now=now)
    # Inside an outer transaction (tests, the admin) a savepoint keeps it usable should a
    # constraint refuse the statement.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        ((log_id, record_id, conversion_status),) = run(
            _write_sql(decision.kind, fired.shape), values
        )
    if log_id is None:
        return conversion_status
    if record_id is None:
        return _outcome(otherwise, log_id=log_id, record_id=None)
    return _outcome(decision, log_id=log_id, record_id=record_id)


def _write_with_orm(
    request: _Request,
    decision: Decision,
    otherwise: Decision,
    click: _Click,
    fired: DeliveryRows,
    now: datetime,
) -> PostbackOutcome:
    """The same write with the ORM (databases other than PostgreSQL), in one transaction:
    the unique constraints refuse a duplicate (``IntegrityError``), ``otherwise`` answers."""
    model = EventRecord if decision.kind is RecordKind.EVENT else Conversion
    with transaction.atomic():
        try:
            with transaction.atomic():
                record_id = model.objects.create(
                    **_record_values(decision, click, created_at=now)
                ).pk
        except IntegrityError:
            # A unique constraint refused it only if the fact the insert assumed is now
            # false (a race); any other refusal is a bug, not a duplicate.
            if not _assumed_fact_failed(decision, click):
                raise
            record_id = None
        if record_id is not None and fired:
            deliveries_write(
                rows=fired,
                link=_LINKS[decision.kind],
                click_id=click.id,
                record_id=record_id,
                record_created_at=now,
                now=now,
            )
        answer = decision if record_id is not None else otherwise
        log = _log_values(request, answer, click, created_at=now) | _log_outcome(answer, record_id)
        log_id = PostbackLog.objects.create(**log).pk
    return _outcome(answer, log_id=log_id, record_id=record_id)


def _assumed_fact_failed(decision: Decision, click: _Click) -> bool:
    """Whether the click now has what the insert assumed it had not: its conversion (a
    conversion), or a record of the event that makes this one a duplicate (an event)."""
    if decision.kind is RecordKind.EVENT:
        return _has_duplicate(click, decision)
    return Conversion.objects.filter(click_id=click.id).exists()


# --- The one-statement path ----------------------------------------------------------------
# Before its click is read, a postback's decision can be predicted from the cached
# definitions for each offer it may be for: the offer it names (``offer_id``, or the offer
# of its ``event_id``: event IDs are platform-wide), else each of the token's advertiser's
# offers. For each such offer, ``rules.decide`` runs on predicted facts (the click exists,
# is that offer's, has its conversion for an event and none for a conversion, the event is
# no duplicate); the offers it would accept become the statement's candidates, and the
# facts it predicted the insert's conditions. The click's real offer picks its candidate's
# row, so the generated URLs' postbacks and the global URL's alike are one round trip when
# accepted. When the insert does not happen, the statement brings back what it read of the
# click and the definitions version, and the ordinary path decides on that.

_AT_ONCE_LOG = Row(
    PostbackLog, exclude=(*_LOG_OUTCOME, "click_id", "offer_id", "event_id"), prefix="log_"
)
# The candidates' columns, as the statement is given them (``given_rows_sql``): one
# candidate (a URL that names its offer) as plain parameters, several as one JSON text.
_CANDIDATE_COLUMNS = {
    "offer_id": "integer",
    "event_id": "integer",
    "allow_multiple": "boolean",
    "mode": "text",
    "revenue": "numeric",
    "payout": "numeric",
    "currency": "text",
    "clicked_after": "timestamptz",
    "clicked_before": "timestamptz",
}


# A capped statement's candidates also say how many caps each counts against (``_caps_param``):
# those of the whole offer, and those of each publisher (a publisher ID per cap).
_CANDIDATE_CAP_COLUMNS = {"caps": "integer", "publisher_caps": "integer[]"}


# The caps' columns (``_caps_param``): for each candidate offer, each cap its record counts
# against (a publisher's cap only for that publisher's clicks), the first day of the cap's
# period, its limit and what the record adds to it.
_CAP_COLUMNS = {
    "k_offer_id": "integer",
    "k_cap_id": "integer",
    "k_publisher_id": "integer",
    "k_start": "date",
    "k_limit": "numeric",
    "k_amount": "numeric",
}


@functools.cache
def _at_once_sql(
    kind: RecordKind,
    deliveries: DeliveryShape | None = None,
    capped: bool = False,
    one_candidate: bool = False,
) -> str:
    record, log, link = _RECORDS[kind], _AT_ONCE_LOG, _LINKS[kind]
    columns = _CANDIDATE_COLUMNS | (_CANDIDATE_CAP_COLUMNS if capped else {})
    candidate_columns = ", ".join(f"c_{name}" for name in columns)
    candidates = given_rows_sql(
        "cand",
        {f"c_{name}": type_ for name, type_ in columns.items()},
        one=one_candidate,
        json_param="candidates",
    )
    from_candidate = {
        "click_id": "candidate.id",
        "publisher_id": "candidate.publisher_id",
        "offer_id": "candidate.c_offer_id",
        "revenue": "candidate.c_revenue",
        "payout": "candidate.c_payout",
        "currency": "candidate.c_currency",
        # One time for the record, its status and its log row: one parameter to send.
        "status_changed_at": "%(created_at)s::timestamptz",
    }
    # The predicted facts, as conditions: the definitions are the cached version, the click
    # exists and is the candidate's offer's (the join), has or lacks its conversion as
    # predicted, and (events) has no record that makes this one a duplicate.
    conditions = [
        "click.version = %(version)s",
        "(click.conversion_id IS NOT NULL) = %(has_conversion)s",
        # Check 7a: the click is within the offer's conversion window (NULL: no window).
        "(c_clicked_after IS NULL OR click.created_at >= c_clicked_after)",
        # min_conversion_seconds: the conversion is not too fast (NULL: no minimum). A test
        # click is exempt, so it is left to the ordinary path to see.
        "(c_clicked_before IS NULL OR click.created_at <= c_clicked_before)",
    ]
    conversion = (
        "(SELECT v.id FROM tracking_conversion v WHERE v.click_id = c.id) AS conversion_id, "
        "NULL::text AS conversion_status"
    )
    if kind is RecordKind.EVENT:
        # The conversion's status as predicted; and accepting an event locks its conversion
        # first (docs/postbacks.md "Approving and rejecting"): FOR SHARE waits for a status
        # change in progress (which locks it FOR UPDATE), reads the status it left, and
        # holds a later change back until this statement has written.
        conditions.append("click.conversion_status = %(conversion_status)s::text")
        conversion = "v.id AS conversion_id, v.status AS conversion_status"
        from_candidate |= {
            "conversion_id": "candidate.conversion_id",
            "event_id": "candidate.c_event_id",
            "allow_multiple": "candidate.c_allow_multiple",
        }
        conditions.append(_no_duplicate_sql(event="c_event_id", mode="c_mode"))
    event_link = "record.event_id" if kind is RecordKind.EVENT else "NULL::integer"
    # The publisher deliveries the record fires, in the same statement (tracking/deliveries.py).
    delivery = ""
    if deliveries is not None:
        delivery = f", {delivery_cte_sql(link.removesuffix('_id'), 'record.click_id', deliveries)}"
    # Caps (docs/postbacks.md "Caps"; the two ways in tracking/caps.py): the predicted fact
    # is that every cap the record counts against has room in the allowance of one shard
    # (``%(shard)s``), shared out for the limit the record was decided on. ``taken`` adds
    # the candidate to that shard of each of its caps (those of its offer, and of its
    # click's publisher) where the allowance holds it, checked on the row it locks as it
    # stands once a concurrent update has committed; rows are locked in cap order, as
    # tracking/caps.py takes them. ``caps.TAKEN`` then lets the record be inserted only
    # where every cap took it (``c_caps``, ``c_publisher_caps``: how many it counts
    # against), and raises where only some did, which undoes the whole statement; so does
    # a duplicate that raced in (no ON CONFLICT here: the insert raises). A cap whose shard
    # has no room, a counter not made or not shared out yet, and a test click (which takes
    # no slot) leave the postback to the ordinary path, which counts it the exact way.
    taken = insert_condition = ""
    on_conflict = "ON CONFLICT DO NOTHING"
    if capped:
        cap_rows = given_rows_sql("k", _CAP_COLUMNS, one=False, json_param="caps")
        counter = CapCounter._meta.db_table
        expected = "c_caps + cardinality(array_positions(c_publisher_caps, {}.publisher_id))"
        conditions.append(f"NOT (click.is_test AND {expected.format('click')} > 0)")
        taken = f"""
), taken AS (
    UPDATE {counter} n SET used = n.used + k.k_amount
    FROM candidate
    JOIN {cap_rows}
         ON k.k_offer_id = candidate.c_offer_id
            AND (k.k_publisher_id IS NULL OR k.k_publisher_id = candidate.publisher_id)
    WHERE n.cap_id = k.k_cap_id AND n.period_start = k.k_start AND n.shard = %(shard)s
      AND n.balanced_for = k.k_limit
      AND n.used < n.allowance AND n.used + k.k_amount <= n.allowance
    RETURNING n.id"""  # noqa: S608 - names only
        # The function (PL/pgSQL, which sets up its expressions anew in every transaction)
        # only where some caps took the record and some did not: that is, rarely.
        count, wanted = "(SELECT count(*) FROM taken)", expected.format("candidate")
        took = (
            f"CASE {count} WHEN {wanted} THEN TRUE WHEN 0 THEN FALSE "  # noqa: S608
            f"ELSE {caps.TAKEN}({count}, {wanted}) END"
        )
        insert_condition = f"\n    WHERE {took}"
        on_conflict = ""
    lock = ""
    if kind is RecordKind.EVENT:
        lock = f"""
), locked AS (
    SELECT v.id, v.status FROM tracking_conversion v
    WHERE v.click_id = (SELECT id FROM the_click) FOR SHARE
), click_records AS MATERIALIZED (
    {_click_records_sql("(SELECT id FROM the_click)")}"""  # noqa: S608 - names only
    return f"""
WITH the_click AS (
    SELECT {version_sql()} AS version, c.id, c.offer_id, c.publisher_id, c.created_at,
           c.is_test
    FROM (SELECT 1) AS one
    LEFT JOIN tracking_click c ON c.transaction_id = %(transaction_id)s{lock}
), click AS (
    SELECT c.*, {conversion}
    FROM the_click c{" LEFT JOIN locked v ON TRUE" if lock else ""}
), candidate AS (
    SELECT click.*, {candidate_columns}
    FROM click JOIN {candidates} ON cand.c_offer_id = click.offer_id
    WHERE {" AND ".join(conditions)}{taken}
), record AS (
    INSERT INTO {record.table} ({record.columns})
    SELECT {record.select_list_with(from_candidate)} FROM candidate{insert_condition}
    {on_conflict}
    RETURNING id, click_id, offer_id, created_at{", event_id" if kind is RecordKind.EVENT else ""}
), log AS (
    INSERT INTO {log.table} ({log.columns}, click_id, offer_id, event_id, reason, status_code,
                             message, {link})
    SELECT {log.select_list_with({"created_at": "record.created_at"})}, record.click_id,
           record.offer_id, {event_link}, 'accepted', 200, '', record.id
    FROM record
    RETURNING id
){delivery}
SELECT click.version, click.id, click.offer_id, click.publisher_id, click.conversion_id,
       click.conversion_status,
       -- What the ordinary path decides on where nothing was written.
       CASE WHEN NOT EXISTS (SELECT FROM record) THEN {_microseconds_sql("click.created_at")} END,
       click.is_test,
       (SELECT id FROM record), (SELECT id FROM log)
FROM click
"""  # noqa: S608 - only names and constants are interpolated


#: The conversion's status the one-statement path predicts for an event (the common case);
#: an event of a pending or rejected conversion takes the ordinary path.
PREDICTED_CONVERSION_STATUS = "approved"


def _candidate_offers(params: PostbackParams, defs: Definitions) -> Sequence[int]:
    """The offers the postback may be for, as far as the cache knows (none: not tried)."""
    if params.offer_id is not None:
        return (params.offer_id,)
    if params.event_id is not None:
        offer_id = defs.cached_event_offer(params.event_id)
        return (offer_id,) if offer_id is not None else ()
    advertiser_id = defs.cached_advertiser_for_token(params.secure)
    offers = defs.cached_advertiser_offers(advertiser_id) if advertiser_id is not None else None
    if offers is None:
        return ()
    if params.event_name is not None:
        # Only the offers with an event of that name can accept it.
        offers = [o for o in offers if params.event_name in _cached_event_names(defs, o)]
    return offers if len(offers) <= MAX_CANDIDATES else ()


def _cached_event_names(defs: Definitions, offer_id: int) -> Mapping[str, object]:
    events = defs.cached_events(offer_id)
    return events.by_name if events is not None else {}


def _predicted(request: _Request, params: PostbackParams, offer_id: int) -> Facts:
    """The facts an accepted postback for ``offer_id`` finds, as far as they can be
    foreseen: the click exists and is that offer's, and has its conversion for an event
    (approved, the common case: ``PREDICTED_CONVERSION_STATUS``), none for a conversion (the
    duplicate fact and the click's time are left unknown: the rules assume them and say so);
    and what is known of the request itself (its address, its time)."""
    has_conversion, conversion_status = _predicted_conversion(params.kind)
    return Facts(
        click=ClickFacts(
            offer_id=offer_id,
            has_conversion=has_conversion,
            conversion_status=conversion_status,
        ),
        ip=request.ip,
        check_allow_list=request.check_allow_list,
        now=request.now,
    )


def _predicted_conversion(kind: RecordKind) -> tuple[bool, str | None]:
    """Whether the click is predicted to have its conversion, and in which status."""
    if kind is RecordKind.EVENT:
        return True, PREDICTED_CONVERSION_STATUS
    return False, None


def _candidates(request: _Request, params: PostbackParams, defs: Definitions) -> list[Decision]:
    """The decision for each offer the postback may be for, on the facts predicted for it,
    where that decision accepts."""
    cached = defs.cached_only()
    accepted = []
    for offer_id in _candidate_offers(params, defs):
        decision = rules.decide(params, _predicted(request, params, offer_id), cached)
        # A record a money cap holds for its currency takes the ordinary path (rare).
        held = decision.record_status_reason == rules.CAP_CURRENCY
        if decision.accepted and not held:
            accepted.append(decision)
    return accepted


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What the one-statement path did: accepted (``outcome``), or not, and then what its
    statement read (``read``; None where it was not tried)."""

    outcome: PostbackOutcome | None = None
    read: _Read | None = None


def _learn_candidates(defs: Definitions, decision: Decision) -> None:
    """Load the token's advertiser's offers and events, and the publisher postbacks (three
    queries, once per definitions version and process), so its next postbacks that do not
    name their offer can be tried in one statement."""
    advertiser_id = decision.advertiser_id
    if advertiser_id is not None and defs.cached_advertiser_offers(advertiser_id) is None:
        for offer_id in defs.advertiser_offers(advertiser_id)[:1]:
            # And the publisher postbacks they may fire (all of them: one query).
            defs.publisher_postbacks(offer_id)


def _candidate_row(decision: Decision, capped: bool) -> dict:
    """A candidate's columns (``_CANDIDATE_COLUMNS``, and ``_CANDIDATE_CAP_COLUMNS`` in a
    capped statement) as JSON values; money as text, exact."""
    event = decision.event
    row = {
        "c_offer_id": decision.offer_id,
        "c_event_id": event.id if event is not None else None,
        "c_allow_multiple": event.allow_multiple if event is not None else None,
        "c_mode": decision.duplicate_mode.value,
        "c_revenue": str(decision.revenue),
        "c_payout": str(decision.payout),
        "c_currency": decision.currency,
        # The click-time assumptions (checks 7a and the minimum time): ISO text, or null.
        "c_clicked_after": _iso(decision.clicked_after),
        "c_clicked_before": _iso(decision.clicked_before),
    }
    if capped:
        row["c_caps"] = sum(cap.publisher_id is None for cap in decision.caps)
        row["c_publisher_caps"] = [
            cap.publisher_id for cap in decision.caps if cap.publisher_id is not None
        ]
    return row


def _caps_param(candidates: list[Decision], now: datetime) -> "_CapsParam | None":
    """The candidates' caps for the record made ``now`` (``_CAP_COLUMNS``, as the statement's
    JSON text), and the (cap ID, period start) counters they take slots in; None where no
    candidate has caps.

    Built once per day, caps and amounts (``_caps_param_for``): a capped offer's postbacks
    mostly add the same amounts, and building the rows and their JSON cost each one more than
    looking them up."""
    if not any(decision.caps for decision in candidates):
        return None  # most offers: no day to work out
    offers = tuple(
        (d.offer_id, d.caps, tuple(rules.cap_amount(cap, d) for cap in d.caps)) for d in candidates
    )
    return _caps_param_for(local_day(now), offers)


_CapsParam = tuple[str, tuple[tuple[int, date], ...]]


@functools.lru_cache(maxsize=512)
def _caps_param_for(
    day: date, candidates: tuple[tuple[int, tuple[CapDefinition, ...], tuple[Decimal, ...]], ...]
) -> _CapsParam:
    """``_caps_param`` for (offer ID, caps, what the record adds to each) candidates on
    ``day``: money as text, exact."""
    rows, counters = [], []
    for offer_id, offer_caps, amounts in candidates:
        # In cap order: the statement locks their counters in the order of these rows.
        for cap, amount in sorted(zip(offer_caps, amounts, strict=True), key=lambda p: p[0].id):
            start = period_start(cap.period, day)
            counters.append((cap.id, start))
            rows.append(
                {
                    "k_offer_id": offer_id,
                    "k_cap_id": cap.id,
                    "k_publisher_id": cap.publisher_id,
                    "k_start": start.isoformat(),
                    "k_limit": str(cap.limit),
                    "k_amount": str(amount),
                }
            )
    return json.dumps(rows), tuple(counters)


def _array_text(numbers: list[int]) -> str:
    """``numbers`` as the text of a PostgreSQL array (``{1,2}``)."""
    return "{" + ",".join(map(str, numbers)) + "}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _accept_at_once(request: _Request, params: PostbackParams) -> _Attempt:
    """Decide and write in one statement where the cache can predict the decision (see
    above)."""
    defs = cached_definitions()
    if (
        defs is None
        or not on_postgresql()
        or not _TRANSACTION_ID_RE.fullmatch(params.transaction_id)
    ):
        return _Attempt()
    candidates = _candidates(request, params, defs)
    if not candidates:
        return _Attempt()
    # Which publisher postbacks each candidate fires is cached with the definitions (not
    # yet loaded: the ordinary path loads it); the click's publisher picks in the statement.
    postbacks = [defs.cached_publisher_postbacks(c.offer_id) for c in candidates]
    if any(offer_postbacks is None for offer_postbacks in postbacks):
        return _Attempt()
    kind = params.kind
    first = candidates[0]
    now = request.now
    fired = delivery_rows(
        _winners_and_facts(c, defs, publisher_id=None, now=now)
        for c, offer_postbacks in zip(candidates, postbacks, strict=True)
        if offer_postbacks  # most offers: no publisher has a postback for them
    )
    # Every candidate was decided on the same predicted conversion status, so they share
    # the record's status; the money and offer differ and come from the candidate's row.
    record = _record_values(first, None, created_at=now)
    log = _log_values(request, first, None, created_at=now)
    values = _sql_values(_RECORDS[kind], record) | _sql_values(_AT_ONCE_LOG, log)
    has_conversion, conversion_status = _predicted_conversion(kind)
    values |= {
        "transaction_id": params.transaction_id,
        "version": defs.version,
        # The same for every candidate; the statement checks them of the click it reads.
        "has_conversion": has_conversion,
        "conversion_status": conversion_status,
        "adv_sub": params.adv_sub,
    }
    if fired:
        values |= fired.params(now=now)
    capped = _caps_param(candidates, now)
    rows = [_candidate_row(c, capped is not None) for c in candidates]
    one_candidate = len(rows) == 1
    if one_candidate:
        values |= rows[0]
        if capped is not None:
            # As PostgreSQL's array text: psycopg's list dumper inspects every list it is
            # given to choose the array's type.
            values["c_publisher_caps"] = _array_text(rows[0]["c_publisher_caps"])
    else:
        values["candidates"] = json.dumps(rows)
    if capped is not None:
        caps_json, counters = capped
        # The statement takes slots in existing counters only (tracking/caps.py); a cap
        # deleted since the definitions were cached leaves the postback to the ordinary path.
        if not caps.counters_ensure(counters):
            return _Attempt()
        values["caps"] = caps_json
        # Not randrange: its Python costs more than the C of random().
        values["shard"] = int(random.random() * CapCounter.SHARDS)  # noqa: S311 - not a secret
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            sql = _at_once_sql(kind, fired.shape, capped is not None, one_candidate)
            (row,) = run(sql, values)
    except OperationalError as error:
        # Crossed with a status change taking the same counters and hourly totals rows
        # (tracking/caps.py ``counters_lock``): nothing was written; the ordinary path,
        # which locks them in order, takes the postback.
        if not is_deadlock(error):
            raise
        return _Attempt()
    except DatabaseError as error:
        # A capped statement undone (see _at_once_sql): only some of the record's caps had
        # room for it, or a duplicate raced in. Nothing was written; the ordinary path
        # decides, and counts the record the exact way.
        if not (capped and (isinstance(error, IntegrityError) or caps.is_taken_in_part(error))):
            raise
        return _Attempt()
    version, click_id, *click, record_id, log_id = row
    if record_id is None:
        read_click = None if click_id is None else _click_of(click_id, *click)
        return _Attempt(read=_Read(definitions(version=version), read_click))
    decision = next(c for c in candidates if c.offer_id == click[0])
    return _Attempt(outcome=_outcome(decision, log_id=log_id, record_id=record_id))


# --- Publisher deliveries (SPEC "Publisher postbacks (outbound)") ---------------------------


def _winners_and_facts(
    decision: Decision, defs: Definitions, *, publisher_id: int | None, now: datetime
) -> tuple[dict, RecordFacts | None]:
    """The publisher postbacks an accepted decision fires (one per publisher; only
    ``publisher_id``'s when known), and the record's macro values (none when nothing
    fires), from the definitions cache: no query once loaded, and nothing to write when no
    publisher has one. A record accepted other than ``approved`` fires nothing now: its
    first approval will (tracking/deliveries.py ``deliveries_for_status_change``)."""
    assert decision.offer_id is not None and decision.params is not None
    event = decision.event
    winners = {}
    if decision.record_status == RecordStatus.APPROVED:
        winners = winning_postbacks(
            defs.publisher_postbacks(decision.offer_id),
            trigger=decision.kind.value,
            offer_id=decision.offer_id,
            event_id=event.id if event else None,
            publisher_id=publisher_id,
        )
    if not winners:
        return winners, None
    offer = defs.cached_offer(decision.offer_id)
    facts = RecordFacts(
        transaction_id=decision.params.transaction_id,
        offer_id=decision.offer_id,
        offer_name=offer.name if offer else "",
        publisher_id=publisher_id or 0,
        record_type=decision.kind.value,
        event_id=event.id if event else None,
        event_name=event.name if event else "",
        payout=decision.payout,
        currency=decision.currency,
        status=decision.record_status,
        status_reason=decision.record_status_reason,
        created_at=now,
    )
    return winners, facts


def _fired(
    decision: Decision, defs: Definitions, *, publisher_id: int, now: datetime
) -> DeliveryRows:
    return delivery_rows([_winners_and_facts(decision, defs, publisher_id=publisher_id, now=now)])


# --- What the log keeps --------------------------------------------------------------------


def printable(value: str) -> str:
    """``value`` with control characters and lone surrogates escaped (``\\x00``, ``\\ud800``)."""
    if value.isprintable():
        return value
    return UNPRINTABLE_RE.sub(_escape, value)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def loggable_params(params: Mapping[str, str], mask: TokenMask | None = None) -> dict[str, str]:
    """What the log keeps of the parameters: ``secure`` masked, every advertiser's token
    masked wherever it appears (``mask``, tracking.masking), the rest escaped and cut.

    The whole token is never stored: only ``mask_token``'s first characters.
    """
    mask = mask if mask is not None else token_mask()
    secure = params.get("secure", "")
    kept: dict[str, str] = {}
    for name, value in list(params.items())[:LOG_PARAMETER_LIMIT]:
        # Also where a misconfigured URL repeats the token under another name.
        if name == "secure" or (secure and value == secure):
            value = mask_token(value)
        kept[printable(mask(name))[:LOG_NAME_LIMIT]] = printable(mask(value))[:LOG_VALUE_LIMIT]
    return kept
