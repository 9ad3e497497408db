"""The postback rules (SPEC "Postback endpoint"): one home for every check, the money and the write.

``postback_process`` runs the spec's checks top to bottom; the first that fails decides the
answer. A rejected postback writes only its log row; an accepted one writes its record and its
log row in one transaction. "Exactly once" is the database's job: the unique constraints on
``Conversion`` and ``EventRecord`` make the loser of a race fail its insert, and that
``IntegrityError`` becomes the duplicate answer (``409``), never a ``500``. The reads that come
before the insert only give the normal answer early and in the spec's order.

The view (``tracking/views.py``) only merges the query string and the form body into
``params`` and renders the outcome; the admin's "Test postback" tab calls the same function,
with ``dry_run=True`` to see the decision without writing anything.
"""

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from offers.models import Advertiser, Event, Offer
from offers.money import earned, is_percentage
from offers.tokens import mask_token, token_digest
from tracking.models import Click, Conversion, EventRecord, PostbackLog, Reason
from tracking.sql import MAX_DEFINITION_ID, fetch, insert, insert_linked, instance

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
}

# fullmatch with explicit ASCII classes: \d would accept other scripts' digits, and "$"
# would accept a trailing newline.
_POSITIVE_INT_RE = re.compile(r"[0-9]+")
_AMOUNT_RE = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,4})?")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
# The format every click's transaction_id has (Click's check constraint): anything else
# cannot be a click, so it is answered without a query.
_TRANSACTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# C0 and C1 control characters and DEL (Unicode category Cc), and lone surrogates: not
# text at all (HTTP cannot carry them, but the service is also called from Python) and not
# encodable for the database. PostgreSQL also refuses NUL in text and JSON, so the log
# escapes these wherever it keeps a value as received.
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class PostbackOutcome:
    status_code: int  # the HTTP status the endpoint answers
    reason: str  # a tracking.models.Reason value
    body: dict  # the JSON answer exactly as the endpoint sends it
    log: PostbackLog | None  # the log row written (None for a dry run)
    record: Conversion | EventRecord | None  # what was accepted (None if rejected/dry run)


@dataclass(frozen=True)
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


@dataclass
class _Trail:
    """What the request resolved to so far: the log row links as much as was found."""

    type: str = ""
    advertiser: Advertiser | None = None
    click: Click | None = None
    event: Event | None = None


@dataclass(frozen=True)
class _Decision:
    """An accepted postback before it is written: what to record and what it earned."""

    click: Click
    revenue: Decimal
    payout: Decimal
    currency: str
    event: Event | None = None
    conversion_id: int | None = None
    extra: dict = field(default_factory=dict)


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
    decides. Writes the record and its log row in one transaction when accepted, only the log
    row when rejected, and nothing at all when ``dry_run`` (the body then carries
    ``"id": null`` where it would accept). Database errors other than a lost race propagate:
    the caller answers ``503`` for an unreachable database.
    """
    params = {str(name): "" if value is None else str(value) for name, value in params.items()}
    trail = _Trail(type=_postback_type(params))
    try:
        decision = _decide(params, trail)
    except _Rejected as rejection:
        return _reject(params, trail, rejection, method, ip, user_agent, dry_run=dry_run)
    if dry_run:
        return PostbackOutcome(
            status_code=STATUS[Reason.ACCEPTED],
            reason=Reason.ACCEPTED,
            body=_accepted_body(decision, record_id=None),
            log=None,
            record=None,
        )
    return _accept(params, trail, decision, method, ip, user_agent)


def postback_unreadable(
    *, method: str, ip: str | None, user_agent: str, message: str, params: Mapping[str, str]
) -> PostbackOutcome:
    """Log and answer a request whose parameters could not be read at all.

    For requests Django refuses to parse (too many fields, a body over the upload limit, a
    broken multipart body): they are still postback requests, so they get their log row and
    a ``400 invalid_parameter``. ``params`` holds whatever could be read (often nothing).
    """
    params = {str(name): "" if value is None else str(value) for name, value in params.items()}
    rejection = _Rejected(Reason.INVALID_PARAMETER, message)
    return _reject(params, _Trail(), rejection, method, ip, user_agent, dry_run=False)


# --- The checks, in the spec's order ------------------------------------------------------


def _decide(params: dict[str, str], trail: _Trail) -> _Decision:
    # 1. secure or transaction_id missing or empty.
    missing = [name for name in REQUIRED_PARAMETERS if not params.get(name)]
    if missing:
        names = " and ".join(missing)
        raise _Rejected(
            Reason.MISSING_PARAMETER,
            f"Missing parameter: {names} must be sent and not empty.",
        )

    # 2. A parameter malformed.
    data = _validated(params)

    # 3 to 5 in one query in the common case: the click comes with its offer, the offer's
    # advertiser and the click's conversion ID. When the token is that advertiser's, checks
    # 3, 4 and 5 all pass; only otherwise is the token looked up on its own, to tell the
    # three answers apart in the spec's order.
    click = _click_for(data.transaction_id)
    if click is not None and _token_matches(click.offer.advertiser, data.secure):
        trail.advertiser = click.offer.advertiser
        trail.click = click
    else:
        # 3. secure is no advertiser's token.
        advertiser = _advertiser_for_token(data.secure)
        if advertiser is None:
            raise _Rejected(
                Reason.INVALID_SECURE,
                "The secure token is not valid. Copy it again from the postback URL you were "
                "given.",
            )
        trail.advertiser = advertiser

        # 4. No click has this transaction_id.
        if click is None:
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
        return _decide_event(data, click, trail)
    return _decide_conversion(data, click)


def _decide_conversion(data: PostbackParams, click: Click) -> _Decision:
    offer = click.offer
    needs_amount = is_percentage(offer.revenue_type) or is_percentage(offer.payout_type)

    # 7. The click already has a conversion (read with the click). The unique constraint
    # conversion_one_per_click is the guard: a conversion recorded after that read makes the
    # insert fail, and that becomes this same answer.
    if click.conversion_id is not None:
        raise _duplicate_conversion()

    # 8. A CPS revenue or payout needs the sale amount.
    if needs_amount and data.amount is None:
        raise _Rejected(
            Reason.AMOUNT_REQUIRED,
            "This offer pays a percentage of the sale (CPS): send the sale amount in amount.",
        )

    # 9. Accepted.
    return _Decision(
        click=click,
        revenue=earned(
            money_type=offer.revenue_type, value=offer.revenue_value, amount=data.amount
        ),
        payout=earned(money_type=offer.payout_type, value=offer.payout_value, amount=data.amount),
        currency=data.currency or offer.currency,
        extra=_record_fields(data),
    )


def _decide_event(data: PostbackParams, click: Click, trail: _Trail) -> _Decision:
    # 7 and 8: the event, by event_id and/or event_name (exact, case sensitive), within
    # the click's offer. The same query tells whether this click has records of it.
    event = _event_for(click, data)
    trail.event = event

    # 9. Events need a conversion first (its ID was read with the click).
    conversion_id = click.conversion_id
    if conversion_id is None:
        raise _Rejected(
            Reason.NO_CONVERSION,
            "No conversion is recorded for this transaction_id; events need a conversion first.",
        )

    # 10. Already recorded for this click (per adv_sub for an event that allows multiple).
    if _is_duplicate_event(event, data.adv_sub):
        raise _duplicate_event(event, data.adv_sub)

    # 11. A CPS revenue or payout needs the sale amount.
    if (is_percentage(event.revenue_type) or is_percentage(event.payout_type)) and (
        data.amount is None
    ):
        raise _Rejected(
            Reason.AMOUNT_REQUIRED,
            f"The event “{event.name}” pays a percentage of the sale (CPS): send the sale "
            "amount in amount.",
        )

    # 12. Accepted.
    return _Decision(
        click=click,
        event=event,
        conversion_id=conversion_id,
        revenue=earned(
            money_type=event.revenue_type, value=event.revenue_value, amount=data.amount
        ),
        payout=earned(money_type=event.payout_type, value=event.payout_value, amount=data.amount),
        currency=data.currency or click.offer.currency,
        extra=_record_fields(data),
    )


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
            if _UNPRINTABLE_RE.search(value):
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


def _token_matches(advertiser: Advertiser, secure: str) -> bool:
    """Whether ``secure`` is this advertiser's token, compared in constant time."""
    given = secure.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(advertiser.postback_token.encode("utf-8"), given)


def _advertiser_for_token(secure: str) -> Advertiser | None:
    """The advertiser owning this token, found by digest and confirmed in constant time."""
    rows = fetch(_ADVERTISER_SQL, [token_digest(secure)])
    if not rows:
        return None
    advertiser_id, name, token = rows[0]
    advertiser = instance(Advertiser, id=advertiser_id, name=name, postback_token=token)
    return advertiser if _token_matches(advertiser, secure) else None


# The reads of the hot path are written in SQL: building and compiling the equivalent
# QuerySets cost more CPU than everything else an accepted postback does (measured with
# cProfile; docs/benchmarks.md). They read the same tables and indexes the ORM would.

# Serves: the unique index on postback_token_digest.
_ADVERTISER_SQL = """
SELECT id, name, postback_token FROM offers_advertiser WHERE postback_token_digest = %s
"""

# The click with what the checks and the record need of its offer and the offer's
# advertiser, and its conversion's ID. Money is read as text so that both engines hand
# back exact decimals. Serves: tracking_click's unique index on transaction_id, then
# conversion_one_per_click.
_CLICK_SQL = """
SELECT c.id, c.transaction_id, c.offer_id, c.publisher_id,
       o.advertiser_id, o.currency,
       o.revenue_type, CAST(o.revenue_value AS TEXT),
       o.payout_type, CAST(o.payout_value AS TEXT),
       a.postback_token,
       (SELECT v.id FROM tracking_conversion v WHERE v.click_id = c.id) AS conversion_id
FROM tracking_click c
JOIN offers_offer o ON o.id = c.offer_id
JOIN offers_advertiser a ON a.id = o.advertiser_id
WHERE c.transaction_id = %s
"""

# The events of an offer named by event_id or event_name, with whether this click already
# has records of each (has_record) and records with this adv_sub (has_adv_sub_record).
# Serves: event_name_unique_per_offer / the primary key, then eventrecord_click_event.
_EVENTS_SQL = """
SELECT e.id, e.name, e.revenue_type, CAST(e.revenue_value AS TEXT),
       e.payout_type, CAST(e.payout_value AS TEXT), e.allow_multiple,
       EXISTS (SELECT 1 FROM tracking_eventrecord r
               WHERE r.click_id = %(click)s AND r.event_id = e.id) AS has_record,
       EXISTS (SELECT 1 FROM tracking_eventrecord r
               WHERE r.click_id = %(click)s AND r.event_id = e.id
                 AND r.adv_sub = %(adv_sub)s AND r.adv_sub <> '') AS has_adv_sub_record
FROM offers_event e
WHERE e.offer_id = %(offer)s AND (e.id = %(event_id)s OR e.name = %(event_name)s)
"""


def _click_for(transaction_id: str) -> Click | None:
    """The click with its offer, the offer's advertiser and ``conversion_id`` (or None)."""
    if not _TRANSACTION_ID_RE.fullmatch(transaction_id):
        return None
    rows = fetch(_CLICK_SQL, [transaction_id])
    if not rows:
        return None
    (
        click_id,
        transaction_id,
        offer_id,
        publisher_id,
        advertiser_id,
        currency,
        revenue_type,
        revenue_value,
        payout_type,
        payout_value,
        token,
        conversion_id,
    ) = rows[0]
    advertiser = instance(Advertiser, id=advertiser_id, postback_token=token)
    offer = instance(
        Offer,
        id=offer_id,
        advertiser_id=advertiser_id,
        currency=currency,
        revenue_type=revenue_type,
        revenue_value=Decimal(revenue_value),
        payout_type=payout_type,
        payout_value=Decimal(payout_value),
    )
    offer.advertiser = advertiser
    click = instance(
        Click,
        id=click_id,
        transaction_id=transaction_id,
        offer_id=offer_id,
        publisher_id=publisher_id,
    )
    click.offer = offer
    click.conversion_id = conversion_id
    return click


def _has_conversion(click: Click) -> bool:
    return Conversion.objects.filter(click_id=click.pk).exists()


def _event_for(click: Click, data: PostbackParams) -> Event:
    """Checks 7 (each identifier sent names an event of the offer) and 8 (the same one).

    Each event comes annotated with whether this click already has records of it
    (``has_record``) and records with this ``adv_sub`` (``has_adv_sub_record``), for check 10.
    """
    offer_id = click.offer_id
    # An event_id beyond the column's range names no event (and is never sent as a bind).
    event_id = data.event_id
    if event_id is not None and event_id > MAX_DEFINITION_ID:
        event_id = None
    events = []
    if event_id is not None or data.event_name is not None:
        rows = fetch(
            _EVENTS_SQL,
            {
                "click": click.pk,
                "adv_sub": data.adv_sub,
                "offer": offer_id,
                "event_id": event_id,
                "event_name": data.event_name,
            },
        )
        for pk, name, rev_type, rev_value, pay_type, pay_value, multiple, has, has_sub in rows:
            event = instance(
                Event,
                id=pk,
                offer_id=offer_id,
                name=name,
                revenue_type=rev_type,
                revenue_value=Decimal(rev_value),
                payout_type=pay_type,
                payout_value=Decimal(pay_value),
                allow_multiple=bool(multiple),
            )
            event.has_record, event.has_adv_sub_record = bool(has), bool(has_sub)
            events.append(event)
    by_id = next((e for e in events if e.pk == data.event_id), None)
    by_name = next((e for e in events if e.name == data.event_name), None)

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
    if by_id is not None and by_name is not None and by_id.pk != by_name.pk:
        raise _Rejected(
            Reason.EVENT_MISMATCH,
            f"event_id {by_id.pk} is the event “{by_id.name}”, but event_name is "
            f"“{by_name.name}” (event_id {by_name.pk}).",
        )
    event = by_id or by_name
    assert event is not None  # is_event guarantees one identifier, found above
    return event


def _is_duplicate_event(event: Event, adv_sub: str) -> bool:
    """Check 10 from the annotations of ``_event_for``, by the event's current setting.

    An event switched from multiple to single refuses a second record even where the older
    records were stored as multiple.
    """
    if not event.allow_multiple:
        return event.has_record
    return bool(adv_sub) and event.has_adv_sub_record


def _duplicate_lookup(click: Click, event: Event, adv_sub: str) -> Q | None:
    """Which existing records make this event postback a duplicate (check 10), if any can."""
    if not event.allow_multiple:
        return Q(click_id=click.pk, event_id=event.pk)
    if adv_sub:
        return Q(click_id=click.pk, event_id=event.pk, adv_sub=adv_sub)
    return None


def _has_duplicate_event(click: Click, event: Event, adv_sub: str) -> bool:
    lookup = _duplicate_lookup(click, event, adv_sub)
    return lookup is not None and EventRecord.objects.filter(lookup).exists()


# --- Answers and writes --------------------------------------------------------------------


def _duplicate_conversion() -> _Rejected:
    return _Rejected(
        Reason.DUPLICATE_CONVERSION,
        "A conversion is already recorded for this transaction_id; it is counted once.",
    )


def _duplicate_event(event: Event, adv_sub: str) -> _Rejected:
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


def _record_fields(data: PostbackParams) -> dict:
    return {"amount": data.amount, **data.adv_subs}


def _accepted_body(decision: _Decision, *, record_id: int | None) -> dict:
    body = {
        "status": "accepted",
        "reason": Reason.ACCEPTED.value,
        "type": PostbackLog.Type.EVENT.value
        if decision.event
        else PostbackLog.Type.CONVERSION.value,
        "id": record_id,
        "transaction_id": decision.click.transaction_id,
        "offer_id": decision.click.offer_id,
    }
    if decision.event is not None:
        body["event_id"] = decision.event.pk
        body["event_name"] = decision.event.name
    body["revenue"] = str(decision.revenue)
    body["payout"] = str(decision.payout)
    body["currency"] = decision.currency
    return body


def _accept(
    params: dict[str, str],
    trail: _Trail,
    decision: _Decision,
    method: str,
    ip: str | None,
    user_agent: str,
) -> PostbackOutcome:
    """Write the record and its log row together; a lost race becomes the duplicate answer."""
    click = decision.click
    now = timezone.now()
    record_model = EventRecord if decision.event is not None else Conversion
    record = record_model(
        click_id=click.pk,
        offer_id=click.offer_id,
        publisher_id=click.publisher_id,
        revenue=decision.revenue,
        payout=decision.payout,
        currency=decision.currency,
        created_at=now,
        **decision.extra,
    )
    if decision.event is not None:
        record.event_id = decision.event.pk
        record.conversion_id = decision.conversion_id
        record.allow_multiple = decision.event.allow_multiple
    log = _log_row(
        params,
        trail,
        method,
        ip,
        user_agent,
        status_code=STATUS[Reason.ACCEPTED],
        reason=Reason.ACCEPTED,
        message="",
        created_at=now,
    )
    link = "conversion" if decision.event is None else "event_record"
    try:
        # The record and its log row together, in one statement on PostgreSQL.
        insert_linked(record, log, link)
    except IntegrityError:
        # Another request recorded the same thing between our reads and our insert (a
        # retry storm, several workers): the unique constraint made this insert fail and
        # rolled everything back. Confirm it was that, then answer as the duplicate it is.
        if decision.event is None:
            if not _has_conversion(click):
                raise
            rejection = _duplicate_conversion()
        else:
            if not _has_duplicate_event(click, decision.event, decision.extra["adv_sub"]):
                raise
            rejection = _duplicate_event(decision.event, decision.extra["adv_sub"])
        return _reject(params, trail, rejection, method, ip, user_agent, dry_run=False)
    return PostbackOutcome(
        status_code=STATUS[Reason.ACCEPTED],
        reason=Reason.ACCEPTED,
        body=_accepted_body(decision, record_id=record.pk),
        log=log,
        record=record,
    )


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
    status_code = STATUS[rejection.reason]
    body = {"status": "rejected", "reason": rejection.reason.value, "message": rejection.message}
    log = None
    if not dry_run:
        log = _log(
            params,
            trail,
            method,
            ip,
            user_agent,
            status_code=status_code,
            reason=rejection.reason,
            message=rejection.message,
        )
    return PostbackOutcome(
        status_code=status_code, reason=rejection.reason, body=body, log=log, record=None
    )


def _log(params: dict[str, str], trail: _Trail, *args: object, **kwargs: object) -> PostbackLog:
    """Write the log row of a rejected request (its own autocommit insert)."""
    log = _log_row(params, trail, *args, **kwargs)
    insert(log)
    return log


def _log_row(
    params: dict[str, str],
    trail: _Trail,
    method: str,
    ip: str | None,
    user_agent: str,
    *,
    status_code: int,
    reason: Reason,
    message: str,
    created_at: datetime | None = None,
) -> PostbackLog:
    """The request's log row, unsaved: every parameter (``secure`` masked), where it got, the
    outcome."""
    secure = params.get("secure", "")
    click = trail.click
    log = PostbackLog(
        created_at=created_at or timezone.now(),
        method=printable(method)[:10],
        params=loggable_params(params),
        secure_masked=printable(mask_token(secure))[:32],
        ip=ip or None,
        user_agent=printable(user_agent)[:512],
        status_code=status_code,
        reason=reason,
        message=message[:500],
        type=trail.type,
        transaction_id=printable(params.get("transaction_id", ""))[:255],
        advertiser_id=trail.advertiser.pk if trail.advertiser else None,
        offer_id=click.offer_id if click else None,
        event_id=trail.event.pk if trail.event else None,
        click_id=click.pk if click else None,
    )
    return log


def printable(value: str) -> str:
    """``value`` with control characters and lone surrogates escaped (``\\x00``, ``\\ud800``)."""

    def escape(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNPRINTABLE_RE.sub(escape, value)


def loggable_params(params: Mapping[str, str]) -> dict[str, str]:
    """What the log keeps of the parameters: ``secure`` masked, the rest escaped and cut.

    The whole token is never stored: only ``mask_token``'s first characters.
    """
    secure = params.get("secure", "")
    kept: dict[str, str] = {}
    for name, value in list(params.items())[:LOG_PARAMETER_LIMIT]:
        # Also where a misconfigured URL repeats the token under another name.
        if name == "secure" or (secure and value == secure):
            value = mask_token(value)
        kept[printable(name)[:LOG_NAME_LIMIT]] = printable(value)[:LOG_VALUE_LIMIT]
    return kept
