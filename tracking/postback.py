"""The postback rules (SPEC "Postback endpoint"): one home for every check, the money and the write.

``postback_process`` runs the spec's checks top to bottom; the first that fails decides the
answer. A rejected postback writes only its log row; an accepted one writes its record and its
log row in one statement. "Exactly once" is the database's job: the unique constraints on
``Conversion`` and ``EventRecord`` decide every duplicate (``ON CONFLICT DO NOTHING``), and the
log row written in the same statement says ``accepted`` or the duplicate's reason by what the
insert did. The read before the write only gives the other answers in the spec's order.

What a postback costs on PostgreSQL (docs/benchmarks.md): at most two round trips, whatever
the answer. First the click, its conversion's ID and the definitions version in one read (the
advertiser's token, the offer's and its events' rules come from offers.definitions, cached
per process and exact for that version); then one statement that writes the record and its
log row, or only the log row. A postback that names its offer (``offer_id``, or an
``event_id``: the generated URLs carry them) is first tried as one statement doing both (see
"The one-statement path"); only if that does not accept does the ordinary path run, on what
it read. On SQLite the write is two inserts in one transaction.

The view (``tracking/views.py``) only merges the query string and the form body into
``params`` and renders the outcome; the admin's "Test postback" tab calls the same function,
with ``dry_run=True`` to see the decision without writing anything.
"""

import functools
import json
import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from offers.definitions import (
    Definitions,
    EventDefinition,
    OfferDefinition,
    cached_definitions,
    definitions,
    tokens_match,
    version_sql,
)
from offers.tokens import mask_token
from tracking.masking import TokenMask, token_mask
from tracking.models import Conversion, EventRecord, PostbackLog, Reason
from tracking.sql import Row, on_postgresql, run

REQUIRED_PARAMETERS = ("secure", "transaction_id")
ADV_SUB_PARAMETERS = ("adv_sub", "adv_sub2", "adv_sub3", "adv_sub4", "adv_sub5")
OPTIONAL_PARAMETERS = (
    "event_id",
    "event_name",
    "offer_id",
    "amount",
    "currency",
    *ADV_SUB_PARAMETERS,
)
#: Every parameter the endpoint reads. Others are kept in the log and otherwise ignored.
PARAMETERS = REQUIRED_PARAMETERS + OPTIONAL_PARAMETERS

VALUE_LIMIT = 255
# What the log keeps of a request, so a hostile request cannot make a huge log row.
LOG_PARAMETER_LIMIT = 50
LOG_NAME_LIMIT = 64
LOG_VALUE_LIMIT = 255

STATUS = {
    Reason.ACCEPTED: 200,
    Reason.MISSING_PARAMETER: 400,
    Reason.INVALID_PARAMETER: 400,
    Reason.INVALID_SECURE: 403,
    Reason.UNKNOWN_TRANSACTION: 404,
    Reason.OFFER_MISMATCH: 422,
    Reason.DUPLICATE_CONVERSION: 409,
    Reason.AMOUNT_REQUIRED: 422,
    Reason.UNKNOWN_EVENT: 404,
    Reason.EVENT_MISMATCH: 422,
    Reason.NO_CONVERSION: 422,
    Reason.DUPLICATE_EVENT: 409,
    Reason.UNAVAILABLE: 503,
    Reason.REQUEST_TOO_LARGE: 413,
}

# fullmatch with explicit ASCII classes: \d would accept other scripts' digits, and "$"
# would accept a trailing newline.
_POSITIVE_INT_RE = re.compile(r"[0-9]+")
_AMOUNT_RE = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,4})?")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
# The format every click's transaction_id has (Click's check constraint): anything else
# cannot be a click, so it is not looked up.
_TRANSACTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# C0 and C1 control characters and DEL (Unicode category Cc), and lone surrogates: not
# text at all (HTTP cannot carry them, but the service is also called from Python) and not
# encodable for the database. PostgreSQL also refuses NUL in text and JSON, so the log
# escapes these wherever it keeps a value as received. (Text that ``str.isprintable()``
# accepts holds none of them, which spares the search for almost every value.)
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


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
class PostbackParams:
    """The parameters after checks 1 and 2: present, well-formed, empty optionals as None."""

    secure: str
    transaction_id: str
    event_id: int | None
    event_name: str | None
    offer_id: int | None
    amount: Decimal | None
    currency: str | None
    adv_subs: dict[str, str]

    @property
    def is_event(self) -> bool:
        return self.event_id is not None or self.event_name is not None

    @property
    def adv_sub(self) -> str:
        return self.adv_subs["adv_sub"]


@dataclass(frozen=True, slots=True)
class _Click:
    id: int
    offer_id: int
    publisher_id: int
    conversion_id: int | None


@dataclass(slots=True)
class _Trail:
    """What the request resolved to so far: the log row links as much as was found."""

    type: str = ""
    advertiser_id: int | None = None
    click: _Click | None = None
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    """An accepted postback before it is written: what to record and what it earned."""

    data: PostbackParams
    click: _Click
    offer: OfferDefinition
    revenue: Decimal
    payout: Decimal
    currency: str
    event: EventDefinition | None = None


class _Rejected(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def postback_process(
    *,
    params: Mapping[str, str],
    method: str = "GET",
    ip: str | None = None,
    user_agent: str = "",
    dry_run: bool = False,
) -> PostbackOutcome:
    """Decide a postback, record it if accepted, log it, and say what to answer.

    ``params`` is the merged parameter dict (the view merges the query string and the form
    body). Runs the checks of SPEC "Postback endpoint" in order; the first that fails
    decides. Writes the record and its log row together when accepted, only the log row when
    rejected, and nothing at all when ``dry_run`` (the body then carries ``"id": null`` where
    it would accept). Database errors other than a lost race propagate: the caller answers
    ``503`` for an unreachable database.
    """
    params = {str(name): "" if value is None else str(value) for name, value in params.items()}
    trail = _Trail(type=_postback_type(params))
    try:
        data = _parsed(params)
        facts = None
        if not dry_run:
            attempt = _accept_at_once(data, params, trail, method, ip, user_agent)
            if isinstance(attempt, PostbackOutcome):
                return attempt
            facts = attempt
        decision = _decide(data, trail, facts)
        if dry_run and decision.event is not None:
            # The write would find a duplicate (check 10); a dry run asks instead.
            _refuse_duplicate_event(decision.click, decision.event, decision.data.adv_sub)
    except _Rejected as rejection:
        return _reject(params, trail, rejection, method, ip, user_agent, dry_run=dry_run)
    if dry_run:
        return PostbackOutcome(
            status_code=STATUS[Reason.ACCEPTED],
            reason=Reason.ACCEPTED,
            body=_accepted_body(decision, record_id=None),
            is_event=decision.event is not None,
        )
    return _accept(params, trail, decision, method, ip, user_agent)


def postback_unreadable(
    *,
    method: str,
    ip: str | None,
    user_agent: str,
    message: str,
    params: Mapping[str, str],
    reason: Reason = Reason.INVALID_PARAMETER,
) -> PostbackOutcome:
    """Log and answer a request whose parameters could not be read at all.

    For requests Django refuses to parse (too many fields, a body over the upload limit, a
    broken multipart body): they are still postback requests, so they get their log row and
    a ``400 invalid_parameter`` (or ``413 request_too_large`` for a body over the limit).
    ``params`` holds whatever could be read (often nothing).
    """
    params = {str(name): "" if value is None else str(value) for name, value in params.items()}
    rejection = _Rejected(reason, message)
    return _reject(params, _Trail(), rejection, method, ip, user_agent, dry_run=False)


# --- The checks, in the spec's order ------------------------------------------------------


def _parsed(params: dict[str, str]) -> PostbackParams:
    # 1. secure or transaction_id missing or empty.
    missing = [name for name in REQUIRED_PARAMETERS if not params.get(name)]
    if missing:
        names = " and ".join(missing)
        raise _Rejected(
            Reason.MISSING_PARAMETER,
            f"Missing parameter: {names} must be sent and not empty.",
        )

    # 2. A parameter malformed.
    return _validated(params)


def _decide(
    data: PostbackParams, trail: _Trail, facts: tuple[Definitions, "_Click | None"] | None
) -> _Decision:
    """Checks 3 to 12, on the click as ``facts`` found it (else it is read now)."""
    # 3 to 5 with one read: the click and its conversion's ID, and the definitions version
    # that tells which cached token and rules are current. When the token is the click's
    # advertiser's, checks 3, 4 and 5 all pass; only otherwise is the token looked up on its
    # own, to tell the three answers apart in the spec's order.
    defs, click = facts or _click_for(data.transaction_id)
    offer = defs.offer(click.offer_id) if click is not None else None
    if offer is not None and tokens_match(offer.postback_token, data.secure):
        trail.advertiser_id = offer.advertiser_id
        trail.click = click
    else:
        # 3. secure is no advertiser's token.
        advertiser_id = defs.advertiser_for_token(data.secure)
        if advertiser_id is None:
            raise _Rejected(
                Reason.INVALID_SECURE,
                "The secure token is not valid. Copy it again from the postback URL you were "
                "given.",
            )
        trail.advertiser_id = advertiser_id

        # 4. No click has this transaction_id.
        if click is None or offer is None:
            raise _Rejected(
                Reason.UNKNOWN_TRANSACTION,
                "No click has this transaction_id. Send the transaction_id that the tracking "
                "link passed to your landing page.",
            )
        trail.click = click

        # 5. The click's offer belongs to another advertiser than the token's.
        raise _Rejected(
            Reason.INVALID_SECURE,
            "This secure token does not authorise postbacks for this transaction_id: the click "
            "belongs to another advertiser's offer.",
        )

    # 6. offer_id given and not the click's offer.
    if data.offer_id is not None and data.offer_id != click.offer_id:
        raise _Rejected(
            Reason.OFFER_MISMATCH,
            f"offer_id {data.offer_id} is not the offer of this transaction_id "
            f"(offer {click.offer_id}).",
        )

    if data.is_event:
        return _decide_event(data, click, offer, defs, trail)
    return _decide_conversion(data, click, offer)


def _decide_conversion(data: PostbackParams, click: _Click, offer: OfferDefinition) -> _Decision:
    # 7. The click already has a conversion (read with the click). The unique constraint
    # conversion_one_per_click is the guard: a conversion recorded after that read makes the
    # insert do nothing, and the log row written with it says duplicate_conversion.
    if click.conversion_id is not None:
        raise _duplicate_conversion()

    # 8. A CPS revenue or payout needs the sale amount.
    if offer.money.needs_amount and data.amount is None:
        raise _Rejected(
            Reason.AMOUNT_REQUIRED,
            "This offer pays a percentage of the sale (CPS): send the sale amount in amount.",
        )

    # 9. Accepted.
    return _Decision(
        data=data,
        click=click,
        offer=offer,
        revenue=offer.money.revenue(data.amount),
        payout=offer.money.payout(data.amount),
        currency=data.currency or offer.currency,
    )


def _decide_event(
    data: PostbackParams,
    click: _Click,
    offer: OfferDefinition,
    defs: Definitions,
    trail: _Trail,
) -> _Decision:
    # 7 and 8: the event, by event_id and/or event_name (exact, case sensitive), within
    # the click's offer.
    event = _event_for(defs, click, data)
    trail.event_id = event.id

    # 9. Events need a conversion first (its ID was read with the click).
    if click.conversion_id is None:
        raise _Rejected(
            Reason.NO_CONVERSION,
            "No conversion is recorded for this transaction_id; events need a conversion first.",
        )

    # 10. Already recorded for this click (per adv_sub for an event that allows multiple):
    # decided by the write itself (see _accept_sql), except where check 11 would refuse
    # the postback anyway; then a duplicate must still be told first.
    # 11. A CPS revenue or payout needs the sale amount.
    if event.money.needs_amount and data.amount is None:
        _refuse_duplicate_event(click, event, data.adv_sub)
        raise _Rejected(
            Reason.AMOUNT_REQUIRED,
            f"The event “{event.name}” pays a percentage of the sale (CPS): send the sale "
            "amount in amount.",
        )

    # 12. Accepted.
    return _Decision(
        data=data,
        click=click,
        offer=offer,
        event=event,
        revenue=event.money.revenue(data.amount),
        payout=event.money.payout(data.amount),
        currency=data.currency or offer.currency,
    )


def _event_for(defs: Definitions, click: _Click, data: PostbackParams) -> EventDefinition:
    """Checks 7 (each identifier sent names an event of the offer) and 8 (the same one)."""
    offer_id = click.offer_id
    events = defs.events(offer_id)
    by_id = events.by_id.get(data.event_id) if data.event_id is not None else None
    by_name = events.by_name.get(data.event_name) if data.event_name is not None else None

    if data.event_id is not None and by_id is None:
        raise _Rejected(
            Reason.UNKNOWN_EVENT,
            f"Offer {offer_id} has no event with event_id {data.event_id}.",
        )
    if data.event_name is not None and by_name is None:
        raise _Rejected(
            Reason.UNKNOWN_EVENT,
            f"Offer {offer_id} has no event named “{data.event_name}” (names are case sensitive).",
        )
    if by_id is not None and by_name is not None and by_id.id != by_name.id:
        raise _Rejected(
            Reason.EVENT_MISMATCH,
            f"event_id {by_id.id} is the event “{by_id.name}”, but event_name is "
            f"“{by_name.name}” (event_id {by_name.id}).",
        )
    event = by_id or by_name
    assert event is not None  # is_event guarantees one identifier, found above
    return event


# --- Parsing (checks 1 and 2 need no database) ---------------------------------------------


def _postback_type(params: Mapping[str, str]) -> str:
    """Without event_id and event_name a conversion; with either (not empty) an event."""
    if params.get("event_id") or params.get("event_name"):
        return PostbackLog.Type.EVENT
    return PostbackLog.Type.CONVERSION


def _validated(params: Mapping[str, str]) -> PostbackParams:
    """Check 2 for every parameter the endpoint reads; an empty optional counts as absent.

    Parameters the endpoint does not read are not judged: measurement partners add their own
    and a postback should not fail over them. They are kept (escaped, cut) in the log.
    """
    values: dict[str, str | None] = {}
    for name in PARAMETERS:
        value = params.get(name) or None
        if value is not None:
            if len(value) > VALUE_LIMIT:
                raise _invalid(name, f"longer than {VALUE_LIMIT} characters")
            if not value.isprintable() and _UNPRINTABLE_RE.search(value):
                raise _invalid(name, "holds a control character")
        values[name] = value

    event_id = _positive_int(values["event_id"], "event_id")
    offer_id = _positive_int(values["offer_id"], "offer_id")
    amount = values["amount"]
    if amount is not None and not _AMOUNT_RE.fullmatch(amount):
        raise _invalid(
            "amount",
            "must be a plain decimal number: 1–10 digits, optionally a point and 1–4 more "
            "(e.g. 19.99)",
        )
    currency = values["currency"]
    if currency is not None and not _CURRENCY_RE.fullmatch(currency):
        raise _invalid("currency", "must be a 3-letter ISO code such as USD")

    return PostbackParams(
        secure=values["secure"] or "",
        transaction_id=values["transaction_id"] or "",
        event_id=event_id,
        event_name=values["event_name"],
        offer_id=offer_id,
        amount=Decimal(amount) if amount is not None else None,
        currency=currency.upper() if currency is not None else None,
        adv_subs={name: values[name] or "" for name in ADV_SUB_PARAMETERS},
    )


def _positive_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not _POSITIVE_INT_RE.fullmatch(value) or int(value) <= 0:
        raise _invalid(name, "must be a positive whole number")
    return int(value)


def _invalid(name: str, problem: str) -> _Rejected:
    return _Rejected(Reason.INVALID_PARAMETER, f"Invalid parameter {name}: {problem}.")


# --- Reads -----------------------------------------------------------------------------------

# The click, its conversion's ID and the definitions version, in one row even when no click
# has this transaction_id. Serves: tracking_click's unique index on transaction_id, then
# conversion_one_per_click.
_CLICK_SQL = """
SELECT {version}, c.id, c.offer_id, c.publisher_id,
       (SELECT v.id FROM tracking_conversion v WHERE v.click_id = c.id)
FROM (SELECT 1) AS one
LEFT JOIN tracking_click c ON c.transaction_id = %(transaction_id)s
"""


def _duplicates_sql(dedupe: str, click: str) -> str:
    """Check 10 as SQL: does the click (``click``, an SQL expression) have records that make
    this postback a duplicate (``_dedupe``)? Serves: eventrecord_click_event."""
    adv_sub = " AND r.adv_sub = %(adv_sub)s" if dedupe == "adv_sub" else ""
    # Only the constant expressions above are interpolated; values are bound.
    return (
        "EXISTS (SELECT 1 FROM tracking_eventrecord r "  # noqa: S608
        f"WHERE r.click_id = {click} AND r.event_id = %(event_id)s{adv_sub})"  # noqa: S608
    )


def _click_for(transaction_id: str) -> tuple[Definitions, _Click | None]:
    """The definitions current for this request, and the click (or None)."""
    # A transaction_id of another format cannot be a click's; the read still brings the
    # version.
    known_format = _TRANSACTION_ID_RE.fullmatch(transaction_id) is not None
    ((version, click_id, offer_id, publisher_id, conversion_id),) = run(
        _click_sql(), {"transaction_id": transaction_id if known_format else None}
    )
    click = None if click_id is None else _Click(click_id, offer_id, publisher_id, conversion_id)
    return definitions(version=version), click


@functools.cache
def _click_sql() -> str:
    return _CLICK_SQL.format(version=version_sql())


def _dedupe(event: EventDefinition, adv_sub: str) -> str:
    """Which records make this event postback a duplicate (check 10), by the event's current
    setting: ``once`` any record of it for the click, ``adv_sub`` one with this adv_sub,
    ``""`` none (it allows multiple and no adv_sub was sent). An event switched from
    multiple to single refuses a second record even where the older ones were multiple."""
    if not event.allow_multiple:
        return "once"
    return "adv_sub" if adv_sub else ""


def _refuse_duplicate_event(click: _Click, event: EventDefinition, adv_sub: str) -> None:
    """Check 10 as a read, for where the write will not be tried (dry runs, check 11)."""
    dedupe = _dedupe(event, adv_sub)
    if not dedupe:
        return
    sql = f"SELECT {_duplicates_sql(dedupe, '%(click_id)s')}"
    ((duplicate,),) = run(sql, {"click_id": click.id, "event_id": event.id, "adv_sub": adv_sub})
    if duplicate:
        raise _duplicate_event(event)


# --- Answers and writes --------------------------------------------------------------------


def _duplicate_conversion() -> _Rejected:
    return _Rejected(
        Reason.DUPLICATE_CONVERSION,
        "A conversion is already recorded for this transaction_id; it is counted once.",
    )


def _duplicate_event(event: EventDefinition) -> _Rejected:
    if event.allow_multiple:
        return _Rejected(
            Reason.DUPLICATE_EVENT,
            f"The event “{event.name}” is already recorded for this transaction_id with this "
            "adv_sub.",
        )
    return _Rejected(
        Reason.DUPLICATE_EVENT,
        f"The event “{event.name}” is already recorded for this transaction_id and does not "
        "allow multiple records.",
    )


def _accepted_body(decision: _Decision, *, record_id: int | None) -> dict:
    event = decision.event
    body = {
        "status": "accepted",
        "reason": Reason.ACCEPTED.value,
        "type": PostbackLog.Type.EVENT.value if event else PostbackLog.Type.CONVERSION.value,
        "id": record_id,
        "transaction_id": decision.data.transaction_id,
        "offer_id": decision.click.offer_id,
    }
    if event is not None:
        body["event_id"] = event.id
        body["event_name"] = event.name
    body["revenue"] = str(decision.revenue)
    body["payout"] = str(decision.payout)
    body["currency"] = decision.currency
    return body


def _rejected_body(rejection: _Rejected) -> dict:
    return {"status": "rejected", "reason": rejection.reason.value, "message": rejection.message}


# The log row's columns: all of them for a rejection; for an accepted postback all but the
# outcome, which the statement sets by what the record's insert did.
_LOG = Row(PostbackLog)
_LOG_OUTCOME = ("reason", "status_code", "message", "conversion_id", "event_record_id")
_LOG_WITH_RECORD = Row(PostbackLog, exclude=_LOG_OUTCOME, prefix="log_")
_RECORDS = {"conversion": Row(Conversion), "event_record": Row(EventRecord)}


@functools.cache
def _accept_sql(link: str, dedupe: str, postgresql: bool) -> tuple[str, str]:
    """The statement(s) that write an accepted postback: (record, log row) on SQLite, run in
    one transaction; on PostgreSQL one statement (a data-modifying CTE, atomic by itself,
    one round trip) and ``""``.

    The record is inserted unless it is a duplicate: ``NOT EXISTS`` finds the records that
    make it one (``_dedupe``), and ``ON CONFLICT DO NOTHING`` lets the unique constraints
    decide a race that reading cannot see (two requests at once: exactly one inserts). On
    PostgreSQL the log row in the same statement says ``accepted`` and links the record when
    it was inserted, and says the duplicate's reason when it was not.
    """
    record = _RECORDS[link]
    where = "WHERE TRUE"  # SQLite needs a WHERE to read ON CONFLICT as the upsert clause
    if dedupe:
        where = f"WHERE NOT {_duplicates_sql(dedupe, '%(click_id)s')}"
    insert_record = (
        f"INSERT INTO {record.table} ({record.columns}) "  # noqa: S608
        f"SELECT {record.select_list} {where} "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    if not postgresql:
        insert_log = (
            f"INSERT INTO {_LOG.table} ({_LOG.columns}) VALUES ({_LOG.placeholders}) RETURNING id"  # noqa: S608, E501
        )
        return insert_record, insert_log
    duplicate = Reason.DUPLICATE_EVENT if link == "event_record" else Reason.DUPLICATE_CONVERSION
    log = _LOG_WITH_RECORD
    sql = f"""
WITH record AS ({insert_record})
INSERT INTO {log.table} ({log.columns}, reason, status_code, message, {link}_id)
SELECT {log.select_list},
       CASE WHEN record.id IS NULL THEN '{duplicate.value}' ELSE 'accepted' END,
       CASE WHEN record.id IS NULL THEN {STATUS[duplicate]} ELSE 200 END,
       CASE WHEN record.id IS NULL THEN %(duplicate_message)s ELSE '' END,
       record.id
FROM (SELECT 1) AS one LEFT JOIN record ON TRUE
RETURNING id, {link}_id
"""  # noqa: S608 - only names and constants are interpolated
    return sql, ""


def _record_row(
    data: PostbackParams,
    event: EventDefinition | None,
    *,
    offer_id: int,
    revenue: Decimal,
    payout: Decimal,
    currency: str,
    created_at: datetime,
) -> tuple[str, str, dict]:
    """The accepted record's link name (the log row's column), dedupe mode and values, but
    the click's: its ID, publisher and conversion."""
    record = {
        "offer_id": offer_id,
        "revenue": revenue,
        "payout": payout,
        "currency": currency,
        "amount": data.amount,
        **data.adv_subs,
        "created_at": created_at,
    }
    if event is None:
        return "conversion", "", record
    record |= {"event_id": event.id, "allow_multiple": event.allow_multiple}
    return "event_record", _dedupe(event, data.adv_sub), record


def _accept(
    params: dict[str, str],
    trail: _Trail,
    decision: _Decision,
    method: str,
    ip: str | None,
    user_agent: str,
) -> PostbackOutcome:
    """Write the record and its log row together; a duplicate found by the write (check 10,
    or a lost race) becomes the duplicate answer, logged in the same statement."""
    click, event, data = decision.click, decision.event, decision.data
    now = timezone.now()
    link, dedupe, record = _record_row(
        data,
        event,
        offer_id=click.offer_id,
        revenue=decision.revenue,
        payout=decision.payout,
        currency=decision.currency,
        created_at=now,
    )
    record |= {"click_id": click.id, "publisher_id": click.publisher_id}
    if event is not None:
        record["conversion_id"] = click.conversion_id
        duplicate = _duplicate_event(event)
    else:
        duplicate = _duplicate_conversion()
    log = _log_values(params, trail, method, ip, user_agent, created_at=now)
    record_sql, log_sql = _accept_sql(link, dedupe, on_postgresql())
    record_row = _RECORDS[link].values(record)

    if on_postgresql():
        values = record_row | _LOG_WITH_RECORD.values(log)
        values["duplicate_message"] = duplicate.message
        # Inside an outer transaction (tests, the admin) a savepoint keeps it usable should
        # a constraint refuse the statement.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            ((log_id, record_id),) = run(record_sql, values)
    else:
        with transaction.atomic():
            inserted = run(record_sql, record_row)
            record_id = inserted[0][0] if inserted else None
            if record_id is None:
                log |= _outcome(duplicate)
            else:
                log |= _outcome(None) | {f"{link}_id": record_id}
            ((log_id,),) = run(log_sql, _LOG.values(log))

    if record_id is None:
        return PostbackOutcome(
            status_code=STATUS[duplicate.reason],
            reason=duplicate.reason,
            body=_rejected_body(duplicate),
            log_id=log_id,
            is_event=event is not None,
        )
    return PostbackOutcome(
        status_code=STATUS[Reason.ACCEPTED],
        reason=Reason.ACCEPTED,
        body=_accepted_body(decision, record_id=record_id),
        log_id=log_id,
        record_id=record_id,
        is_event=event is not None,
    )


# --- The one-statement path ------------------------------------------------------------------
# A postback whose URL names its offer (offer_id, or an event_id: event IDs are platform-wide)
# can be judged before its click is read, as far as the definitions go: the token, the event,
# the money. What only the click can tell (that it exists, is that offer's, has or lacks its
# conversion, is no duplicate) becomes the conditions of the insert itself. So the generated
# URLs' postbacks, the bulk of the traffic, are one round trip when accepted. When the insert
# does not happen, the statement still brings back what it read of the click and the
# definitions version, and the checks run in order on that, as for any other postback.

_ONCE_LOG = Row(PostbackLog, exclude=(*_LOG_OUTCOME, "click_id"), prefix="log_")


@functools.cache
def _accept_at_once_sql(link: str, dedupe: str) -> str:
    record = _RECORDS[link]
    from_click = {"click_id": "click.id", "publisher_id": "click.publisher_id"}
    if link == "event_record":
        from_click["conversion_id"] = "click.conversion_id"
        conversion = "click.conversion_id IS NOT NULL"
    else:
        conversion = "click.conversion_id IS NULL"
    duplicates = f" AND NOT {_duplicates_sql(dedupe, 'click.id')}" if dedupe else ""
    log = _ONCE_LOG
    return f"""
WITH click AS (
    SELECT {version_sql()} AS version, c.id, c.offer_id, c.publisher_id,
           (SELECT v.id FROM tracking_conversion v WHERE v.click_id = c.id) AS conversion_id
    FROM (SELECT 1) AS one
    LEFT JOIN tracking_click c ON c.transaction_id = %(transaction_id)s
), record AS (
    INSERT INTO {record.table} ({record.columns})
    SELECT {record.select_list_with(from_click)} FROM click
    WHERE click.version = %(version)s AND click.offer_id = %(offer_id)s AND {conversion}
          {duplicates}
    ON CONFLICT DO NOTHING
    RETURNING id, click_id
), log AS (
    INSERT INTO {log.table} ({log.columns}, click_id, reason, status_code, message, {link}_id)
    SELECT {log.select_list}, record.click_id, 'accepted', 200, '', record.id FROM record
    RETURNING id
)
SELECT click.version, click.id, click.offer_id, click.publisher_id, click.conversion_id,
       (SELECT id FROM record), (SELECT id FROM log)
FROM click
"""  # noqa: S608 - only names and constants are interpolated


def _accept_at_once(
    data: PostbackParams,
    params: dict[str, str],
    trail: _Trail,
    method: str,
    ip: str | None,
    user_agent: str,
) -> "PostbackOutcome | tuple[Definitions, _Click | None] | None":
    """Checks 3 to 12 and the write in one statement, where the postback names its offer and
    its definitions are cached (see above). The outcome when accepted; else what the
    statement read (the definitions at its version, the click or None); None where it was
    not tried."""
    defs = cached_definitions()
    if defs is None or not on_postgresql() or not _TRANSACTION_ID_RE.fullmatch(data.transaction_id):
        return None
    offer_id = data.offer_id
    if offer_id is None and data.event_id is not None:
        offer_id = defs.cached_event_offer(data.event_id)
    offer = defs.cached_offer(offer_id) if offer_id is not None else None
    if offer is None or not tokens_match(offer.postback_token, data.secure):
        return None
    event = None
    money = offer.money
    if data.is_event:
        events = defs.cached_events(offer.id)
        if events is None:
            return None
        by_id = events.by_id.get(data.event_id) if data.event_id is not None else None
        by_name = events.by_name.get(data.event_name) if data.event_name is not None else None
        event = by_id or by_name
        if (
            event is None
            or (data.event_id is not None and by_id is None)
            or (data.event_name is not None and by_name is not event)
        ):
            return None
        money = event.money
    if money.needs_amount and data.amount is None:
        return None

    now = timezone.now()
    revenue, payout = money.revenue(data.amount), money.payout(data.amount)
    currency = data.currency or offer.currency
    # The click's own columns come from the statement's read of it.
    link, dedupe, record = _record_row(
        data,
        event,
        offer_id=offer.id,
        revenue=revenue,
        payout=payout,
        currency=currency,
        created_at=now,
    )
    accepted_trail = _Trail(
        type=trail.type,
        advertiser_id=offer.advertiser_id,
        event_id=event.id if event is not None else None,
    )
    log = _log_values(params, accepted_trail, method, ip, user_agent, created_at=now)
    log["offer_id"] = offer.id
    values = (
        _RECORDS[link].values(record)
        | _ONCE_LOG.values(log)
        | {"transaction_id": data.transaction_id, "version": defs.version}
    )
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        ((version, click_id, click_offer, publisher_id, conversion_id, record_id, log_id),) = run(
            _accept_at_once_sql(link, dedupe), values
        )
    click = None
    if click_id is not None:
        click = _Click(click_id, click_offer, publisher_id, conversion_id)
    if record_id is None:
        return definitions(version=version), click
    assert click is not None
    decision = _Decision(
        data=data,
        click=click,
        offer=offer,
        event=event,
        revenue=revenue,
        payout=payout,
        currency=currency,
    )
    return PostbackOutcome(
        status_code=STATUS[Reason.ACCEPTED],
        reason=Reason.ACCEPTED,
        body=_accepted_body(decision, record_id=record_id),
        log_id=log_id,
        record_id=record_id,
        is_event=event is not None,
    )


_INSERT_LOG_SQL = f"INSERT INTO {_LOG.table} ({_LOG.columns}) VALUES ({{values}}) RETURNING id"  # noqa: S608


@functools.cache
def _insert_log_sql() -> str:
    return _INSERT_LOG_SQL.format(values=_LOG.select_list)


def _reject(
    params: dict[str, str],
    trail: _Trail,
    rejection: _Rejected,
    method: str,
    ip: str | None,
    user_agent: str,
    *,
    dry_run: bool,
) -> PostbackOutcome:
    """Answer a rejection; unless a dry run, write its log row (its own autocommit insert)."""
    log_id = None
    if not dry_run:
        log = _log_values(params, trail, method, ip, user_agent, created_at=timezone.now())
        log |= _outcome(rejection)
        ((log_id,),) = run(_insert_log_sql(), _LOG.values(log))
    return PostbackOutcome(
        status_code=STATUS[rejection.reason],
        reason=rejection.reason,
        body=_rejected_body(rejection),
        log_id=log_id,
        is_event=trail.type == PostbackLog.Type.EVENT,
    )


def _outcome(rejection: _Rejected | None) -> dict:
    """The log row's outcome columns: the rejection's, or accepted (None; the caller links
    the record)."""
    reason = rejection.reason if rejection else Reason.ACCEPTED
    return {
        "reason": reason.value,
        "status_code": STATUS[reason],
        "message": token_mask()(rejection.message)[:500] if rejection else "",
        "conversion_id": None,
        "event_record_id": None,
    }


def _log_values(
    params: dict[str, str],
    trail: _Trail,
    method: str,
    ip: str | None,
    user_agent: str,
    *,
    created_at: datetime,
) -> dict:
    """The request's log row but its outcome: every parameter (``secure`` masked), where it
    got."""
    click = trail.click
    # Tokens by value, wherever they were sent; a request that read nothing reads them.
    mask = token_mask(fresh=trail.advertiser_id is None)
    return {
        "created_at": created_at,
        "method": printable(method)[:10],
        # Encoded here, as the JSONField would (its column takes the text).
        "params": json.dumps(loggable_params(params, mask)),
        "secure_masked": printable(mask_token(params.get("secure", "")))[:32],
        "ip": ip or None,
        "user_agent": printable(mask(user_agent))[:512],
        "type": trail.type,
        "transaction_id": printable(mask(params.get("transaction_id", "")))[:255],
        "advertiser_id": trail.advertiser_id,
        "offer_id": click.offer_id if click else None,
        "event_id": trail.event_id,
        "click_id": click.id if click else None,
    }


def printable(value: str) -> str:
    """``value`` with control characters and lone surrogates escaped (``\\x00``, ``\\ud800``)."""
    if value.isprintable():
        return value
    return _UNPRINTABLE_RE.sub(_escape, value)


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
