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

from django.db import IntegrityError, transaction
from django.db.models import Exists, Q, Value
from django.utils import timezone

from offers.models import Advertiser, Event, Offer
from offers.money import earned, is_percentage
from offers.tokens import mask_token, token_digest
from tracking.models import Click, Conversion, EventRecord, PostbackLog, Reason

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
# Event and offer IDs are 32-bit AutoFields: a bigger number names nothing (and is never
# sent to the database, where SQLite would overflow on it).
MAX_ID = 2**31 - 1
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
        decision = _decide(params, trail, dry_run=dry_run)
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


def _decide(params: dict[str, str], trail: _Trail, *, dry_run: bool) -> _Decision:
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

    # 3. secure is no advertiser's token.
    advertiser = _advertiser_for_token(data.secure)
    if advertiser is None:
        raise _Rejected(
            Reason.INVALID_SECURE,
            "The secure token is not valid. Copy it again from the postback URL you were given.",
        )
    trail.advertiser = advertiser

    # 4. No click has this transaction_id.
    click = _click_for(data.transaction_id)
    if click is None:
        raise _Rejected(
            Reason.UNKNOWN_TRANSACTION,
            "No click has this transaction_id. Send the transaction_id that the tracking link "
            "passed to your landing page.",
        )
    trail.click = click

    # 5. The click's offer belongs to another advertiser than the token's.
    if click.offer.advertiser_id != advertiser.pk:
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
    return _decide_conversion(data, click, dry_run=dry_run)


def _decide_conversion(data: PostbackParams, click: Click, *, dry_run: bool) -> _Decision:
    offer = click.offer
    needs_amount = is_percentage(offer.revenue_type) or is_percentage(offer.payout_type)

    # 7. The click already has a conversion. The unique constraint conversion_one_per_click
    # is the guard (the insert fails for a duplicate); this read is only needed where the
    # answer must come before the insert: ahead of check 8, and for a dry run.
    if (dry_run or (needs_amount and data.amount is None)) and _has_conversion(click):
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
    # the click's offer.
    event = _event_for(click.offer, data)
    trail.event = event

    # 9 and 10, answered by one query.
    conversion_id, duplicate = _conversion_and_duplicate(click, event, data.adv_sub)
    if conversion_id is None:
        raise _Rejected(
            Reason.NO_CONVERSION,
            "No conversion is recorded for this transaction_id; events need a conversion first.",
        )
    if duplicate:
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


def _advertiser_for_token(secure: str) -> Advertiser | None:
    """The advertiser owning this token, found by digest and confirmed in constant time."""
    advertiser = (
        Advertiser.objects.filter(postback_token_digest=token_digest(secure))
        .only("id", "name", "postback_token")
        .first()
    )
    if advertiser is None:
        return None
    given = secure.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(advertiser.postback_token.encode("utf-8"), given):
        return None
    return advertiser


def _click_for(transaction_id: str) -> Click | None:
    if not _TRANSACTION_ID_RE.fullmatch(transaction_id):
        return None
    return Click.objects.select_related("offer").filter(transaction_id=transaction_id).first()


def _has_conversion(click: Click) -> bool:
    return Conversion.objects.filter(click_id=click.pk).exists()


def _event_for(offer: Offer, data: PostbackParams) -> Event:
    """Checks 7 (each identifier sent names an event of the offer) and 8 (the same one)."""
    lookup = Q()
    if data.event_id is not None and data.event_id <= MAX_ID:
        lookup |= Q(pk=data.event_id)
    if data.event_name is not None:
        lookup |= Q(name=data.event_name)
    events = list(Event.objects.filter(lookup, offer_id=offer.pk)) if lookup else []
    by_id = next((e for e in events if e.pk == data.event_id), None)
    by_name = next((e for e in events if e.name == data.event_name), None)

    if data.event_id is not None and by_id is None:
        raise _Rejected(
            Reason.UNKNOWN_EVENT,
            f"Offer {offer.pk} has no event with event_id {data.event_id}.",
        )
    if data.event_name is not None and by_name is None:
        raise _Rejected(
            Reason.UNKNOWN_EVENT,
            f"Offer {offer.pk} has no event named “{data.event_name}” (names are case sensitive).",
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


def _duplicate_lookup(click: Click, event: Event, adv_sub: str) -> Q | None:
    """Which existing records make this event postback a duplicate (check 10), if any can.

    Read from the event's current setting, so an event switched from multiple to single
    refuses a second record even where the older records were stored as multiple.
    """
    if not event.allow_multiple:
        return Q(click_id=click.pk, event_id=event.pk)
    if adv_sub:
        return Q(click_id=click.pk, event_id=event.pk, adv_sub=adv_sub)
    return None


def _conversion_and_duplicate(click: Click, event: Event, adv_sub: str) -> tuple[int | None, bool]:
    """The click's conversion ID (or None) and whether check 10 finds a duplicate."""
    lookup = _duplicate_lookup(click, event, adv_sub)
    duplicate = Exists(EventRecord.objects.filter(lookup)) if lookup is not None else Value(False)
    row = (
        Conversion.objects.filter(click_id=click.pk)
        .annotate(duplicate=duplicate)
        .values_list("id", "duplicate")
        .first()
    )
    if row is None:
        return None, False
    return row[0], bool(row[1])


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
    body_fields = {"conversion": record} if decision.event is None else {"event_record": record}
    try:
        with transaction.atomic():
            record.save(force_insert=True)
            body = _accepted_body(decision, record_id=record.pk)
            log = _log(
                params,
                trail,
                method,
                ip,
                user_agent,
                status_code=STATUS[Reason.ACCEPTED],
                reason=Reason.ACCEPTED,
                message="",
                created_at=now,
                **body_fields,
            )
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
        body=body,
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


def _log(
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
    conversion: Conversion | None = None,
    event_record: EventRecord | None = None,
) -> PostbackLog:
    """The request's log row: every parameter (``secure`` masked), where it got, the outcome."""
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
        conversion=conversion,
        event_record=event_record,
    )
    log.save(force_insert=True)
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
            kept[name] = printable(mask_token(value))
        else:
            kept[printable(name)[:LOG_NAME_LIMIT]] = printable(value)[:LOG_VALUE_LIMIT]
    return kept
