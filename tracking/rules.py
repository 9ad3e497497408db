"""The postback rules: the check table of docs/postbacks.md ("Answers"), as pure functions.

Nothing here reads or writes the database. ``decide`` takes what is known about a postback
(its parsed parameters, the facts about its click, the offers' and events' definitions)
and returns one ``Decision``: the reason, the HTTP status, the message, the money and what
to write. Each check of the table is one function named by what it checks, in the table's
order; the first that refuses decides.

The writer (``tracking/postback.py``) reads the facts, asks ``decide`` and writes what it
says. Its one-statement path *predicts* the facts instead (the click exists, is this offer's,
has its conversion…), asks the same ``decide``, and makes the facts it predicted the
conditions of its insert: no rule is written twice.

A fact may also be left unknown (``None``): ``Facts.duplicate_event`` is not read before the
write, whose own conditions and the unique constraints decide it. ``decide`` then assumes
the check passes and says so (``Decision.assumes_no_duplicate_event``); should a later check
refuse anyway, the writer reads the fact and asks again, so the answer is always the first
check that fails.

Adding a check: one more function here, called in order from ``_click_checks``,
``_decide_conversion`` or ``_decide_event``; one more field on ``ClickFacts`` or ``Facts``
if it needs a fact the writer must read (the writer's click read selects it, and the
one-statement path, which predicts it, adds the condition it becomes). For example: an
IP allow-list (check 3a) reads the advertiser's list from the definitions and the address
from the parameters; a conversion window (7a) needs the click's time on ``ClickFacts``; a
rejected conversion (10a) its status; what an accepted postback writes besides its record
(a status, deliveries) goes on ``Decision`` for the writer to insert in the same statement.
"""

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from offers.allow_list import AllowList
from offers.definitions import (
    CapDefinition,
    EventDefinition,
    MoneyRules,
    OfferDefinition,
    OfferEvents,
    tokens_match,
)
from tracking.models import Reason, RecordStatus

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
    Reason.IP_NOT_ALLOWED: 403,
    Reason.CLICK_EXPIRED: 422,
    Reason.WAITING_FOR_CONVERSION: 202,
    Reason.UNAVAILABLE: 503,
    Reason.REQUEST_TOO_LARGE: 413,
    # Record status (docs/postbacks.md "Record status"; the status postback's own answers are
    # decided in tracking/status.py).
    Reason.CONVERSION_REJECTED: 422,
    Reason.UPDATED: 200,
    Reason.UNCHANGED: 200,
    Reason.UNKNOWN_RECORD: 404,
    Reason.AMBIGUOUS_RECORD: 409,
    Reason.INVALID_TRANSITION: 409,
}

#: The status reason of an event recorded pending because its conversion is pending.
CONVERSION_PENDING = "conversion_pending"
#: Status reasons of the offer rules (docs/postbacks.md "Caps, windows").
CAP_REACHED = "cap_reached"
CAP_CURRENCY = "cap_currency"
TOO_FAST = "too_fast"

# fullmatch with explicit ASCII classes: \d would accept other scripts' digits, and "$"
# would accept a trailing newline.
_POSITIVE_INT_RE = re.compile(r"[0-9]+")
_AMOUNT_RE = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,4})?")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
#: C0 and C1 control characters and DEL (Unicode category Cc), and lone surrogates: not
#: text at all (HTTP cannot carry them, but the service is also called from Python) and not
#: encodable for the database. (Text that ``str.isprintable()`` accepts holds none of them,
#: which spares the search for almost every value.)
UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class RecordKind(enum.StrEnum):
    """What a postback records: without ``event_id`` and ``event_name`` a conversion, with
    either an event (the values are ``PostbackLog.Type``'s)."""

    CONVERSION = "conversion"
    EVENT = "event"
    #: A status postback (tracking/status.py): it records nothing; its log rows say so.
    STATUS = "status"

    @classmethod
    def of(cls, params: Mapping[str, str]) -> "RecordKind":
        return cls.EVENT if params.get("event_id") or params.get("event_name") else cls.CONVERSION


class DuplicateMode(enum.StrEnum):
    """Which records of the event already on the click make an event postback a duplicate
    (check 10), by the event's current setting."""

    #: The event does not allow multiple: any record of it. (An event switched from
    #: multiple to single refuses a second record even where the older ones were multiple.)
    ANY_RECORD = "any_record"
    #: It allows multiple and ``adv_sub`` was sent: a record with the same ``adv_sub``.
    SAME_ADV_SUB = "same_adv_sub"
    #: It allows multiple and no ``adv_sub`` was sent: none (every postback is recorded).
    NONE = "none"


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
    def kind(self) -> RecordKind:
        if self.event_id is not None or self.event_name is not None:
            return RecordKind.EVENT
        return RecordKind.CONVERSION

    @property
    def adv_sub(self) -> str:
        return self.adv_subs["adv_sub"]


@dataclass(frozen=True, slots=True)
class ClickFacts:
    """What the checks need to know of the click (read, or predicted by the one-statement
    path). Checks to come add their fact here (the conversion's status, the click's time)."""

    offer_id: int
    has_conversion: bool
    #: When the click was made (check 7a). None: not known (the one-statement path);
    #: ``decide`` then assumes it is within the window and says so (``Decision.clicked_after``).
    created_at: datetime | None = None
    #: The conversion's status (None without one): event checks 10a and the new record's
    #: status depend on it.
    conversion_status: str | None = None
    #: Made from the admin's Test postback tab: its records ignore caps and
    #: ``min_conversion_seconds``. (The one-statement path predicts False.)
    is_test: bool = False
    #: The click's publisher (a cap's scope). None: not known (the one-statement path).
    publisher_id: int | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database said (or is assumed to say) about a postback's click."""

    #: None: no click has this transaction_id (check 4).
    click: ClickFacts | None
    #: Check 10: whether the click has records of the event that make this postback a
    #: duplicate (``DuplicateMode``). None: not read; ``decide`` assumes not and says so.
    duplicate_event: bool | None = None
    # What is known of the request itself.
    #: The client's address (check 3a); None where it could not be read.
    ip: str | None = None
    #: False for the admin's Test postback, which skips the allow-list (and says one is set).
    check_allow_list: bool = True
    #: The time the postback is judged at (check 7a); None: now.
    now: datetime | None = None


class DefinitionsView(Protocol):
    """What the checks read of the definitions (``offers.definitions.Definitions``)."""

    def offer(self, offer_id: int) -> OfferDefinition | None: ...

    def events(self, offer_id: int) -> OfferEvents: ...

    def advertiser_for_token(self, token: str) -> int | None: ...

    def allow_list(self, advertiser_id: int) -> AllowList: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one postback, and what to write when it is accepted.

    The links (advertiser, offer, event) are what the log row records of where the request
    got before it was decided, whatever the answer.
    """

    reason: Reason
    message: str
    #: None only for a request whose parameters could not be read at all.
    kind: RecordKind | None
    params: PostbackParams | None = None
    advertiser_id: int | None = None
    #: The click's offer, once the click is known (check 4 passed): the log row then links
    #: the click too.
    offer_id: int | None = None
    event: EventDefinition | None = None
    # What an accepted postback records (None otherwise).
    revenue: Decimal | None = None
    payout: Decimal | None = None
    currency: str | None = None
    duplicate_mode: DuplicateMode = DuplicateMode.NONE
    #: Check 10 passed only because ``Facts.duplicate_event`` was not known: the write must
    #: make "no duplicate" its condition, and a refusal must be asked again with the fact.
    assumes_no_duplicate_event: bool = False
    #: Check 7a passed only because the click's time was not known: the write must make
    #: "the click was made at or after this" its condition. None: no such assumption.
    clicked_after: datetime | None = None
    #: ``min_conversion_seconds`` passed only because the click's time was not known: the
    #: write must make "the click was made at or before this" its condition.
    clicked_before: datetime | None = None
    #: The caps the writer must take a slot of (docs/postbacks.md "Caps"): each one that is
    #: full makes the record ``pending`` or ``rejected`` (``capped_status``).
    caps: tuple[CapDefinition, ...] = ()
    #: The status an accepted record is recorded in, and why (docs/postbacks.md "Record
    #: status"); ``status_by_rule`` marks a status set by "events follow their conversion".
    record_status: str = RecordStatus.APPROVED.value
    record_status_reason: str = ""
    status_by_rule: bool = False

    @property
    def accepted(self) -> bool:
        return self.reason == Reason.ACCEPTED

    @property
    def status_code(self) -> int:
        return STATUS[self.reason]

    def body(self, *, record_id: int | None) -> dict:
        """The JSON answer (``record_id`` None for a dry run or a refusal)."""
        if self.reason == Reason.WAITING_FOR_CONVERSION:
            assert self.params is not None and self.event is not None
            return {
                "status": "waiting",
                "reason": self.reason.value,
                "message": self.message,
                "type": self.kind,
                "transaction_id": self.params.transaction_id,
                "offer_id": self.offer_id,
                "event_id": self.event.id,
                "event_name": self.event.name,
            }
        if not self.accepted:
            return {"status": "rejected", "reason": self.reason.value, "message": self.message}
        assert self.params is not None and self.offer_id is not None
        body = {
            "status": "accepted",
            "reason": Reason.ACCEPTED.value,
            "type": str(self.kind),
            "id": record_id,
            "transaction_id": self.params.transaction_id,
            "offer_id": self.offer_id,
        }
        if self.event is not None:
            body["event_id"] = self.event.id
            body["event_name"] = self.event.name
        body["revenue"] = str(self.revenue)
        body["payout"] = str(self.payout)
        body["currency"] = self.currency
        body["record_status"] = self.record_status
        body["record_status_reason"] = self.record_status_reason
        return body


class Refused(Exception):
    """A check's refusal: the first one raised decides the answer."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- Checks 1 and 2: the parameters ------------------------------------------------------


def parse(params: Mapping[str, str]) -> PostbackParams | Decision:
    """Checks 1 and 2: the parsed parameters, or the decision that refuses them."""
    try:
        check_required_present(params)
        return check_well_formed(params)
    except Refused as refusal:
        return Decision(refusal.reason, refusal.message, RecordKind.of(params))


def check_required_present(params: Mapping[str, str]) -> None:
    """Check 1 (docs/postbacks.md): ``secure`` or ``transaction_id`` missing or empty."""
    missing = [name for name in REQUIRED_PARAMETERS if not params.get(name)]
    if missing:
        names = " and ".join(missing)
        raise Refused(
            Reason.MISSING_PARAMETER, f"Missing parameter: {names} must be sent and not empty."
        )


def check_well_formed(params: Mapping[str, str]) -> PostbackParams:
    """Check 2 (docs/postbacks.md): every parameter the endpoint reads is well-formed; an
    empty optional counts as absent.

    Parameters the endpoint does not read are not judged: measurement partners add their own
    and a postback should not fail over them. They are kept (escaped, cut) in the log.
    """
    values: dict[str, str | None] = {}
    for name in PARAMETERS:
        value = params.get(name) or None
        if value is not None:
            if len(value) > VALUE_LIMIT:
                raise _invalid(name, f"longer than {VALUE_LIMIT} characters")
            if not value.isprintable() and UNPRINTABLE_RE.search(value):
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


def _invalid(name: str, problem: str) -> Refused:
    return Refused(Reason.INVALID_PARAMETER, f"Invalid parameter {name}: {problem}.")


def unreadable(
    message: str, kind: RecordKind | None = None, reason: Reason = Reason.INVALID_PARAMETER
) -> Decision:
    """A request whose parameters could not be read at all (check 2, before any parameter),
    or whose body is over the limit (``request_too_large``, before check 1); ``kind`` where
    the endpoint tells it (the status postback's)."""
    return Decision(reason, message, kind)


# --- Checks 3 to 12: the click, the offer, the event, the money ---------------------------


@dataclass(slots=True)
class _Links:
    """Where the request got so far: what the log row links, whatever the answer, and what
    check 10 found."""

    advertiser_id: int | None = None
    offer_id: int | None = None
    event: EventDefinition | None = None
    duplicate_mode: DuplicateMode = DuplicateMode.NONE
    #: Check 10 passed on an assumption (``Facts.duplicate_event`` unknown).
    assumed_no_duplicate_event: bool = False
    #: Check 7a passed on an assumption (the click's time unknown): the earliest time allowed.
    clicked_after: datetime | None = None

    def decision(
        self, params: PostbackParams, reason: Reason, message: str = "", **money: object
    ) -> Decision:
        return Decision(
            reason,
            message,
            params.kind,
            params=params,
            advertiser_id=self.advertiser_id,
            offer_id=self.offer_id,
            event=self.event,
            duplicate_mode=self.duplicate_mode,
            assumes_no_duplicate_event=self.assumed_no_duplicate_event,
            clicked_after=self.clicked_after,
            **money,
        )


def decide(params: PostbackParams, facts: Facts, defs: DefinitionsView) -> Decision:
    """Checks 3 to 12 of docs/postbacks.md, in order, on these facts; the first that
    refuses decides. Pure: ``defs`` may load a definition it has not cached, nothing else
    is read."""
    links = _Links()
    try:
        if params.kind is RecordKind.EVENT:
            return _decide_event(params, facts, defs, links)
        return _decide_conversion(params, facts, defs, links)
    except Refused as refusal:
        return links.decision(params, refusal.reason, refusal.message)


def _click_checks(
    params: PostbackParams, facts: Facts, defs: DefinitionsView, links: _Links
) -> tuple[ClickFacts, OfferDefinition]:
    """Checks 3 to 6, the same for conversions and events."""
    click = facts.click
    offer = defs.offer(click.offer_id) if click is not None else None
    links.advertiser_id = check_token(params, offer, defs)
    check_ip_allowed(facts, defs.allow_list(links.advertiser_id))
    click, offer = check_click_known(click, offer)
    links.offer_id = click.offer_id
    check_click_advertiser(offer, links.advertiser_id)
    check_offer_matches(params, click)
    return click, offer


def check_token(
    params: PostbackParams, offer: OfferDefinition | None, defs: DefinitionsView
) -> int:
    """Check 3 (docs/postbacks.md): ``secure`` is an advertiser's token; that advertiser's ID.

    When it is the token of the click's offer's advertiser (``offer``), checks 3, 4 and 5
    all pass and the token needs no lookup of its own; only otherwise is it looked up, to
    tell the three answers apart in the table's order.
    """
    if offer is not None and tokens_match(offer.postback_token, params.secure):
        return offer.advertiser_id
    advertiser_id = defs.advertiser_for_token(params.secure)
    if advertiser_id is None:
        raise Refused(
            Reason.INVALID_SECURE,
            "The secure token is not valid. Copy it again from the postback URL you were given.",
        )
    return advertiser_id


def check_ip_allowed(facts: Facts, allow_list: AllowList) -> None:
    """Check 3a (docs/postbacks.md): the token's advertiser's IP allow-list, when it has
    one, admits the client's address. The admin's Test postback skips it
    (``Facts.check_allow_list``)."""
    if facts.check_allow_list and not allow_list.permits(facts.ip):
        raise Refused(
            Reason.IP_NOT_ALLOWED,
            f"Postbacks with this secure token are only accepted from the advertiser's listed "
            f"addresses, and {facts.ip or 'this address'} is not one of them.",
        )


def check_click_known(
    click: ClickFacts | None, offer: OfferDefinition | None
) -> tuple[ClickFacts, OfferDefinition]:
    """Check 4 (docs/postbacks.md): a click has this ``transaction_id``."""
    if click is None or offer is None:
        raise Refused(
            Reason.UNKNOWN_TRANSACTION,
            "No click has this transaction_id. Send the transaction_id that the tracking "
            "link passed to your landing page.",
        )
    return click, offer


def check_click_advertiser(offer: OfferDefinition, advertiser_id: int) -> None:
    """Check 5 (docs/postbacks.md): the click's offer is the token's advertiser's."""
    if offer.advertiser_id != advertiser_id:
        raise Refused(
            Reason.INVALID_SECURE,
            "This secure token does not authorise postbacks for this transaction_id: the click "
            "belongs to another advertiser's offer.",
        )


def check_offer_matches(params: PostbackParams, click: ClickFacts) -> None:
    """Check 6 (docs/postbacks.md): ``offer_id``, when given, is the click's offer."""
    if params.offer_id is not None and params.offer_id != click.offer_id:
        raise Refused(
            Reason.OFFER_MISMATCH,
            f"offer_id {params.offer_id} is not the offer of this transaction_id "
            f"(offer {click.offer_id}).",
        )


def _decide_conversion(
    params: PostbackParams, facts: Facts, defs: DefinitionsView, links: _Links
) -> Decision:
    click, offer = _click_checks(params, facts, defs, links)
    check_duplicate_conversion(click)
    now = facts.now or datetime.now(UTC)
    links.clicked_after = check_click_in_window(click, offer, now)
    check_amount_given(params, offer.money, what="This offer")
    # Conversion check 9: accepted, in the status the offer's rules give it.
    currency = params.currency or offer.currency
    too_fast, clicked_before = conversion_too_fast(click, offer, now)
    caps, other_currency = applicable_caps(offer, click, RecordKind.CONVERSION, currency)
    status, reason = initial_status(too_fast=too_fast, other_currency=other_currency)
    return _accepted(
        params,
        links,
        offer.money,
        currency,
        record_status=status,
        record_status_reason=reason,
        clicked_before=clicked_before,
        caps=caps,
    )


def conversion_too_fast(
    click: ClickFacts, offer: OfferDefinition, now: datetime
) -> tuple[bool, datetime | None]:
    """``min_conversion_seconds`` (docs/postbacks.md): a conversion sooner than this after
    its click is recorded ``rejected`` (``too_fast``); test clicks are exempt. (too fast,
    the latest click time assumed where the click's time is not known)"""
    if offer.min_conversion_seconds <= 0 or click.is_test:
        return False, None
    latest = now - timedelta(seconds=offer.min_conversion_seconds)
    if click.created_at is None:
        return False, latest
    return click.created_at > latest, None


def applicable_caps(
    offer: OfferDefinition, click: ClickFacts, kind: RecordKind, currency: str
) -> tuple[tuple[CapDefinition, ...], bool]:
    """The offer's caps this record counts against (docs/postbacks.md "Caps"): those of the
    whole offer or of the click's publisher; ``conversions`` caps for a conversion only,
    ``payout``/``revenue`` caps for conversions and events alike. None for a test click.
    (caps, whether a money cap applies but the record is in another currency: then it is
    recorded ``pending`` / ``cap_currency`` and counts against no money cap.) ``kind`` and
    ``currency``: the record's."""
    if click.is_test or not offer.caps:
        return (), False
    is_conversion = kind is RecordKind.CONVERSION
    caps = []
    other_currency = False
    for cap in offer.caps:
        # An unknown publisher (a prediction) counts every cap: the writer decides.
        if click.publisher_id is not None and not cap.applies_to(click.publisher_id):
            continue
        if not cap.counts_money:
            if is_conversion:
                caps.append(cap)
        elif currency != offer.currency:
            other_currency = True
        else:
            caps.append(cap)
    return tuple(caps), other_currency


def cap_amount(cap: CapDefinition, decision: "Decision") -> Decimal:
    """What the record adds to the cap's counter."""
    if cap.metric == "conversions":
        return Decimal(1)
    return decision.payout if cap.metric == "payout" else decision.revenue


def initial_status(*, too_fast: bool, other_currency: bool) -> tuple[str, str]:
    """The status a conversion's rules give it before its caps are taken."""
    if too_fast:
        return RecordStatus.REJECTED.value, TOO_FAST
    if other_currency:
        return RecordStatus.PENDING.value, CAP_CURRENCY
    return RecordStatus.APPROVED.value, ""


def capped_status(
    decision: "Decision", full: "tuple[CapDefinition, ...] | list[CapDefinition]"
) -> tuple[str, str, bool]:
    """The record's status once its caps were tried (``full``: those that had no room), by
    the precedence ``too_fast`` > hard cap > soft cap > ``cap_currency`` /
    ``conversion_pending`` (docs/postbacks.md "Record status"). (status, reason, set by the
    rule "events follow their conversion")"""
    if decision.record_status_reason == TOO_FAST:
        return decision.record_status, TOO_FAST, False
    if any(cap.is_hard for cap in full):
        return RecordStatus.REJECTED.value, CAP_REACHED, False
    if full:
        return RecordStatus.PENDING.value, CAP_REACHED, False
    return decision.record_status, decision.record_status_reason, decision.status_by_rule


def check_duplicate_conversion(click: ClickFacts) -> None:
    """Conversion check 7 (docs/postbacks.md): the click has no conversion yet."""
    if click.has_conversion:
        raise Refused(
            Reason.DUPLICATE_CONVERSION,
            "A conversion is already recorded for this transaction_id; it is counted once.",
        )


def check_click_in_window(
    click: ClickFacts, offer: OfferDefinition, now: datetime
) -> datetime | None:
    """Conversion check 7a (docs/postbacks.md): the click is no older than the offer's
    conversion window (none: no limit). Where the click's time is not known, the earliest
    time allowed: the write's condition."""
    if offer.conversion_window_days is None:
        return None
    earliest = now - timedelta(days=offer.conversion_window_days)
    if click.created_at is None:
        return earliest
    if click.created_at < earliest:
        days = offer.conversion_window_days
        raise Refused(
            Reason.CLICK_EXPIRED,
            f"This click is older than the offer's conversion window ({days} "
            f"day{'s' if days != 1 else ''}); its conversion is no longer counted.",
        )
    return None


def check_amount_given(params: PostbackParams, money: MoneyRules, *, what: str) -> None:
    """Conversion check 8 and event check 11 (docs/postbacks.md): a CPS revenue or payout
    needs the sale amount."""
    if money.needs_amount and params.amount is None:
        raise Refused(
            Reason.AMOUNT_REQUIRED,
            f"{what} pays a percentage of the sale (CPS): send the sale amount in amount.",
        )


def _decide_event(
    params: PostbackParams, facts: Facts, defs: DefinitionsView, links: _Links
) -> Decision:
    click, offer = _click_checks(params, facts, defs, links)
    by_id, by_name = check_event_known(params, click, defs.events(click.offer_id))
    event = links.event = check_event_matches(by_id, by_name)
    if not click.has_conversion and event.wait_for_conversion_minutes > 0:
        # Early events (docs/postbacks.md): kept when checks 1–8 and 11 pass.
        check_amount_given(params, event.money, what=f"The event “{event.name}”")
        raise Refused(
            Reason.WAITING_FOR_CONVERSION,
            "No conversion is recorded for this transaction_id yet; this event is kept for "
            f"{event.wait_for_conversion_minutes} minutes and recorded when the conversion "
            "arrives.",
        )
    check_conversion_exists(click)
    return _decide_event_on_conversion(params, facts, links, offer, event)


def _decide_event_on_conversion(
    params: PostbackParams,
    facts: Facts,
    links: _Links,
    offer: OfferDefinition,
    event: EventDefinition,
) -> Decision:
    """Event checks 10, 10a and 11 and the accepted record (check 12), for a click that has
    its conversion: a postback as it arrives, or a kept early event once the conversion
    came. Raises ``Refused``."""
    click = facts.click
    assert click is not None
    mode = links.duplicate_mode = duplicate_mode(event, params.adv_sub)
    links.assumed_no_duplicate_event = check_duplicate_event(facts, event, mode)
    check_conversion_not_rejected(click)
    check_amount_given(params, event.money, what=f"The event “{event.name}”")
    # Event check 12: accepted, in the status its conversion's status gives it (and, once
    # the writer tried them, its money caps).
    status, reason, by_rule = event_record_status(click)
    currency = params.currency or offer.currency
    caps, other_currency = applicable_caps(offer, click, RecordKind.EVENT, currency)
    if other_currency:
        # Held for the manager, not by the rule: approving the conversion must not approve
        # it past the cap.
        status, reason, by_rule = RecordStatus.PENDING.value, CAP_CURRENCY, False
    return _accepted(
        params,
        links,
        event.money,
        currency,
        record_status=status,
        record_status_reason=reason,
        status_by_rule=by_rule,
        caps=caps,
    )


def decide_kept(
    params: PostbackParams, facts: Facts, offer: OfferDefinition, event: EventDefinition | None
) -> Decision:
    """A kept early event, once its click's conversion is recorded (docs/postbacks.md "Early
    events"): the checks that depend on the conversion (10, 10a) and the amount (11), with
    the event as defined now, and the status its conversion and the offer's caps give it.
    ``event`` None: it was deleted meanwhile (``unknown_event``)."""
    links = _Links(advertiser_id=offer.advertiser_id, offer_id=offer.id, event=event)
    click = facts.click
    assert click is not None and click.has_conversion
    try:
        if event is None:
            raise Refused(
                Reason.UNKNOWN_EVENT, "The event was deleted while this postback was kept."
            )
        return _decide_event_on_conversion(params, facts, links, offer, event)
    except Refused as refusal:
        return links.decision(params, refusal.reason, refusal.message)


def check_event_known(
    params: PostbackParams, click: ClickFacts, events: OfferEvents
) -> tuple[EventDefinition | None, EventDefinition | None]:
    """Event check 7 (docs/postbacks.md): each of ``event_id`` and ``event_name`` sent names
    an event of the click's offer (names exact, case sensitive). The events they name."""
    by_id = events.by_id.get(params.event_id) if params.event_id is not None else None
    by_name = events.by_name.get(params.event_name) if params.event_name is not None else None
    if params.event_id is not None and by_id is None:
        raise Refused(
            Reason.UNKNOWN_EVENT,
            f"Offer {click.offer_id} has no event with event_id {params.event_id}.",
        )
    if params.event_name is not None and by_name is None:
        raise Refused(
            Reason.UNKNOWN_EVENT,
            f"Offer {click.offer_id} has no event named “{params.event_name}” (names are case "
            "sensitive).",
        )
    return by_id, by_name


def check_event_matches(
    by_id: EventDefinition | None, by_name: EventDefinition | None
) -> EventDefinition:
    """Event check 8 (docs/postbacks.md): ``event_id`` and ``event_name``, when both are
    given, name the same event. That event."""
    if by_id is not None and by_name is not None and by_id.id != by_name.id:
        raise Refused(
            Reason.EVENT_MISMATCH,
            f"event_id {by_id.id} is the event “{by_id.name}”, but event_name is "
            f"“{by_name.name}” (event_id {by_name.id}).",
        )
    event = by_id or by_name
    assert event is not None  # an event postback sends one identifier at least, found above
    return event


def check_conversion_exists(click: ClickFacts) -> None:
    """Event check 9 (docs/postbacks.md): the click has its conversion (events need one)."""
    if not click.has_conversion:
        raise Refused(
            Reason.NO_CONVERSION,
            "No conversion is recorded for this transaction_id; events need a conversion first.",
        )


def duplicate_mode(event: EventDefinition, adv_sub: str) -> DuplicateMode:
    """Which records make an event postback a duplicate (event check 10)."""
    if not event.allow_multiple:
        return DuplicateMode.ANY_RECORD
    return DuplicateMode.SAME_ADV_SUB if adv_sub else DuplicateMode.NONE


def check_conversion_not_rejected(click: ClickFacts) -> None:
    """Event check 10a (docs/postbacks.md): the click's conversion is not rejected (after
    the duplicate check, so a resent event still gets 409)."""
    if click.conversion_status == RecordStatus.REJECTED:
        raise Refused(
            Reason.CONVERSION_REJECTED,
            "The conversion of this transaction_id is rejected; its events are not recorded.",
        )


def event_record_status(click: ClickFacts) -> tuple[str, str, bool]:
    """The status an accepted event is recorded in: ``pending`` (``conversion_pending``, set
    by the rule "events follow their conversion", so approving the conversion approves it)
    while its conversion is pending, else ``approved``. (status, reason, set by the rule)"""
    if click.conversion_status == RecordStatus.PENDING:
        return RecordStatus.PENDING.value, CONVERSION_PENDING, True
    return RecordStatus.APPROVED.value, "", False


def check_duplicate_event(facts: Facts, event: EventDefinition, mode: DuplicateMode) -> bool:
    """Event check 10 (docs/postbacks.md): the click has no record of the event that makes
    this one a duplicate (``mode``). True where that was assumed, not known."""
    if mode is DuplicateMode.NONE:
        return False
    if facts.duplicate_event is None:
        return True
    if facts.duplicate_event:
        if event.allow_multiple:
            message = (
                f"The event “{event.name}” is already recorded for this transaction_id with "
                "this adv_sub."
            )
        else:
            message = (
                f"The event “{event.name}” is already recorded for this transaction_id and "
                "does not allow multiple records."
            )
        raise Refused(Reason.DUPLICATE_EVENT, message)
    return False


def _accepted(
    params: PostbackParams,
    links: _Links,
    money: MoneyRules,
    currency: str,
    **outcome: object,
) -> Decision:
    """The accepted decision, with its money (docs/postbacks.md "Money"): the rule's revenue
    and payout for ``amount``, in ``currency`` (the one sent, or else the offer's); and the
    record's status and what the writer must assume and take (``outcome``)."""
    return links.decision(
        params,
        Reason.ACCEPTED,
        revenue=money.revenue(params.amount),
        payout=money.payout(params.amount),
        currency=currency,
        **outcome,
    )


def if_not_inserted(facts: Facts, kind: RecordKind) -> Facts:
    """The facts an insert that did nothing has shown: it assumed the click had no
    conversion (a conversion) or no duplicate record (an event), and it had."""
    if kind is RecordKind.EVENT:
        return replace(facts, duplicate_event=True)
    assert facts.click is not None
    return replace(facts, click=replace(facts.click, has_conversion=True))
