"""Publisher postback deliveries: which fire, what they say, and what becomes of them.

SPEC "Publisher postbacks (outbound)". The pieces, by name:

- ``winning_postbacks`` (a rule, pure): for one record and trigger, the one postback per
  publisher that fires: the most specific (one event over any event, one offer over all
  offers; the oldest on a tie).
- ``record_macros`` / ``delivery_url`` (pure): the macro values of a record and the URL
  filled with them (offers/outbound_urls.py does the encoding).
- ``deliveries_create`` (service): writes a record's deliveries in the caller's
  transaction (the record's own: "nothing lost"). The tracking path on PostgreSQL writes
  them in the record's own statement instead, with ``delivery_cte_sql`` (same rule, same
  macros, filled partly in SQL because the click is read by that statement).
- ``next_step`` (a rule, pure): after an attempt, delivered / retrying (when) / failed.
- ``deliveries_claim``, ``attempts_record``, ``postback_disable_if_failing``: the worker's
  reads and writes (tracking/worker.py runs the requests).
- ``delivery_resend``: what account managers do. (Deleting a postback cancels its
  pending deliveries: ``deliveries_claim`` does not send what has no postback any more.)
"""

import functools
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from offers.definitions import PostbackDefinition
from offers.models import Offer, PublisherPostback
from offers.outbound_urls import ROW_MACROS, fill_url, macros_in, mask_url
from tracking.models import (
    Click,
    Conversion,
    Delivery,
    DeliveryAttempt,
    EventRecord,
    StatusChange,
)
from tracking.outbound import AttemptResult
from tracking.sql import given_rows_sql

#: Seconds to wait after attempt 1, 2, … 6 before the next (SPEC: about 1 min, 5 min,
#: 30 min, 2 h, 6 h and 18 h); attempt 7 is the last.
RETRY_DELAYS = (60, 300, 1800, 7200, 21600, 64800)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: Each delay is stretched or shrunk by up to this fraction, so deliveries that failed
#: together (a publisher's outage) do not all come back in the same second.
JITTER = 0.1
#: How long a claimed delivery stays the claiming worker's: longer than one attempt
#: (5 s) and its recording, so no other worker takes it meanwhile; a worker killed
#: mid-batch leaves its claims due again after this.
LEASE = timedelta(seconds=60)

#: Auto-disable: a postback whose last ``DISABLE_AFTER`` deliveries finished within
#: ``DISABLE_WINDOW`` all failed.
DISABLE_AFTER = 10
DISABLE_WINDOW = timedelta(hours=72)

#: The status of a record when statuses are not tracked (every accepted record is approved).
APPROVED = "approved"
#: Macros the tracking path's statement fills from the click it reads (PostgreSQL).
CLICK_MACROS = ("aff_sub", "aff_sub2", "aff_sub3", "aff_sub4", "aff_sub5", "source")

_SPECIFICITY_EVENT = 4
_SPECIFICITY_OFFER = 2


# --- Which postbacks fire (pure) -------------------------------------------------------------


def _specificity(postback: PostbackDefinition) -> int:
    return (_SPECIFICITY_EVENT if postback.event_id is not None else 0) + (
        _SPECIFICITY_OFFER if postback.offer_id is not None else 0
    )


def winning_postbacks(
    postbacks: Iterable[PostbackDefinition],
    *,
    trigger: str,
    offer_id: int,
    event_id: int | None = None,
    publisher_id: int | None = None,
) -> dict[int, PostbackDefinition]:
    """The postback that fires for each publisher (only ``publisher_id``'s when given).

    ``postbacks`` are enabled ones. A candidate matches the trigger, names this offer or
    all offers, and (event trigger) this event or any event. Of a publisher's matches the
    most specific wins: one event over any event, then one offer over all offers; on a tie
    the oldest (lowest ID), so the choice never depends on the order given.
    """
    winners: dict[int, PostbackDefinition] = {}
    for postback in postbacks:
        if postback.trigger != trigger:
            continue
        if publisher_id is not None and postback.publisher_id != publisher_id:
            continue
        if postback.offer_id is not None and postback.offer_id != offer_id:
            continue
        if postback.event_id is not None and postback.event_id != event_id:
            continue
        current = winners.get(postback.publisher_id)
        if current is None or (_specificity(postback), -postback.id) > (
            _specificity(current),
            -current.id,
        ):
            winners[postback.publisher_id] = postback
    return winners


# --- What a delivery says (pure) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the macros report about one record (never its revenue or adv_subs)."""

    transaction_id: str
    offer_id: int
    offer_name: str
    publisher_id: int
    record_type: str  # "conversion" or "event"
    event_id: int | None
    event_name: str
    payout: Decimal
    currency: str
    status: str
    status_reason: str
    created_at: datetime
    record_id: int | None = None
    click: dict[str, str] | None = None  # aff_sub … aff_sub5, source


#: How each macro of a record is read from its facts (the click's own macros are
#: ``facts.click``; ``delivery_id`` is the delivery row's).
_FROM_FACTS: dict[str, Callable[[RecordFacts], object]] = {
    "transaction_id": attrgetter("transaction_id"),
    "offer_id": attrgetter("offer_id"),
    "offer_name": attrgetter("offer_name"),
    "aff_id": attrgetter("publisher_id"),
    "type": attrgetter("record_type"),
    "event_id": attrgetter("event_id"),
    "event_name": attrgetter("event_name"),
    "payout": lambda facts: f"{facts.payout:.2f}",
    "currency": attrgetter("currency"),
    "status": attrgetter("status"),
    "status_reason": attrgetter("status_reason"),
    "timestamp": lambda facts: int(facts.created_at.timestamp()),
    "record_id": attrgetter("record_id"),
}


def record_macros(facts: RecordFacts, names: Iterable[str] | None = None) -> dict[str, object]:
    """The record's macro values: all of them, or those of ``names`` (the macros a URL
    holds: the one-statement path fills a URL per accepted record)."""
    read = _FROM_FACTS if names is None else {n: _FROM_FACTS[n] for n in names if n in _FROM_FACTS}
    values = {name: value_of(facts) for name, value_of in read.items()}
    values.update(facts.click or {})
    return values


def delivery_url(template: str, facts: RecordFacts, *, delivery_id: int | None) -> str:
    return fill_url(template, record_macros(facts) | {"delivery_id": delivery_id})


# --- Creating deliveries (in the caller's transaction) --------------------------------------


def _facts_for(
    record: Conversion | EventRecord, *, offer_name: str, status_reason: str | None = None
) -> RecordFacts:
    click = record.click
    is_event = isinstance(record, EventRecord)
    return RecordFacts(
        transaction_id=click.transaction_id,
        offer_id=record.offer_id,
        offer_name=offer_name,
        publisher_id=record.publisher_id,
        record_type="event" if is_event else "conversion",
        event_id=record.event_id if is_event else None,
        event_name=record.event.name if is_event else "",
        payout=record.payout,
        currency=record.currency,
        status=record.status,
        status_reason=record.status_reason if status_reason is None else status_reason,
        created_at=record.created_at,
        record_id=record.pk,
        click={name: getattr(click, name) for name in CLICK_MACROS},
    )


def deliveries_create(
    *,
    record: Conversion | EventRecord,
    postbacks: tuple[PostbackDefinition, ...] | None = None,
    only: PostbackDefinition | None = None,
    now: datetime | None = None,
    status_reason: str | None = None,
) -> list[Delivery]:
    """Write the deliveries the record's acceptance (or first approval) fires, in the
    caller's transaction, and return them.

    ``postbacks`` are the offer's (from the definitions cache; read when not given).
    ``only`` sends that postback whatever the rules (the admin's Test button). A record of
    a test click fires nothing (SPEC "Caps…"), nor one that is not approved; a record that
    already has its delivery from a postback gets no second (the unique constraints
    ``delivery_once_per_postback_*``).
    """
    is_event = isinstance(record, EventRecord)
    click = record.click
    if only is None:
        if click.is_test or record.status != APPROVED:
            return []
        if postbacks is None:
            postbacks = offer_postbacks(record.offer_id)
        winners = winning_postbacks(
            postbacks,
            trigger="event" if is_event else "conversion",
            offer_id=record.offer_id,
            event_id=record.event_id if is_event else None,
            publisher_id=record.publisher_id,
        )
        chosen = list(winners.values())
    else:
        chosen = [only]
    if not chosen:
        return []
    facts = _facts_for(record, offer_name=record.offer.name, status_reason=status_reason)
    now = now or timezone.now()
    created = []
    with transaction.atomic():
        for postback in chosen:
            delivery = Delivery(
                postback_id=postback.id,
                publisher_id=record.publisher_id,
                offer_id=record.offer_id,
                trigger=postback.trigger,
                record_type=facts.record_type,
                conversion=None if is_event else record,
                event_record=record if is_event else None,
                transaction_id=click.transaction_id,
                url=delivery_url(postback.url, facts, delivery_id=None),
                next_attempt_at=now,
                created_at=now,
                record_created_at=record.created_at,
            )
            if only is None and _already_delivered(postback.id, record, is_event):
                continue
            delivery.save()
            # {delivery_id} is the row's own ID: known once it is inserted.
            if "{delivery_id}" in postback.url:
                delivery.url = delivery_url(postback.url, facts, delivery_id=delivery.pk)
                Delivery.objects.filter(pk=delivery.pk).update(url=delivery.url)
            created.append(delivery)
    return created


def _already_delivered(postback_id: int, record: Conversion | EventRecord, is_event: bool) -> bool:
    link = {"event_record": record} if is_event else {"conversion": record}
    return Delivery.objects.filter(
        postback_id=postback_id,
        trigger="event" if is_event else "conversion",
        record_created_at=record.created_at,  # one partition, not every month's
        **link,
    ).exists()


def status_reason_macro(*, reason: str, source: str) -> str:
    """``{status_reason}``: platform codes as they are (the rules set them: cap_reached,
    conversion_rejected, …); someone's free text never, only who wrote it."""
    if source == StatusChange.Source.RULE or not reason:
        return reason
    return "advertiser" if source == StatusChange.Source.POSTBACK else "manager"


def deliveries_for_status_change(
    *, record: Conversion | EventRecord, change: StatusChange, now: datetime | None = None
) -> list[Delivery]:
    """The deliveries a status change fires, written in its transaction (the caller's:
    tracking/status.py writes the change and calls this).

    - The record's status deliveries not yet delivered are ``superseded``: the publisher
      learns the latest status, not a stale one after it.
    - Each publisher's most specific ``status`` postback fires, once per history entry.
    - A change to ``approved`` fires the record's ``conversion`` / ``event`` postbacks if
      they never fired (accepted ``pending``, approved now): once per (postback, record).
    """
    now = now or timezone.now()
    is_event = isinstance(record, EventRecord)
    model = EventRecord if is_event else Conversion
    link = "event_record" if is_event else "conversion"
    Delivery.objects.filter(
        trigger=Delivery.Trigger.STATUS,
        outcome__in=Delivery.PENDING,
        record_created_at=record.created_at,  # one partition, not every month's
        **{link: record.pk},
    ).update(outcome=Delivery.Outcome.SUPERSEDED, next_attempt_at=None)
    related = ["click", "offer", "event"] if is_event else ["click", "offer"]
    full = model.objects.select_related(*related).get(pk=record.pk)
    # The record as the change leaves it (the caller may write its row after this).
    full.status, full.status_reason = change.to_status, change.reason
    if full.click.is_test:
        return []
    postbacks = offer_postbacks(full.offer_id)
    if not postbacks:
        return []
    reason = status_reason_macro(reason=change.reason, source=change.source)
    winners = winning_postbacks(
        postbacks, trigger="status", offer_id=full.offer_id, publisher_id=full.publisher_id
    )
    created = []
    facts = _facts_for(full, offer_name=full.offer.name, status_reason=reason)
    facts = replace(facts, status=change.to_status)
    for postback in winners.values():
        delivery = Delivery.objects.create(
            postback_id=postback.id,
            publisher_id=full.publisher_id,
            offer_id=full.offer_id,
            trigger=Delivery.Trigger.STATUS,
            record_type=facts.record_type,
            **{link: full},
            status_change=change,
            transaction_id=full.click.transaction_id,
            url=delivery_url(postback.url, facts, delivery_id=None),
            next_attempt_at=now,
            created_at=now,
            record_created_at=full.created_at,
        )
        if "{delivery_id}" in postback.url:
            delivery.url = delivery_url(postback.url, facts, delivery_id=delivery.pk)
            Delivery.objects.filter(pk=delivery.pk).update(url=delivery.url)
        created.append(delivery)
    if change.to_status == APPROVED:
        created += deliveries_create(
            record=full, postbacks=postbacks, now=now, status_reason=reason
        )
    return created


def offer_postbacks(offer_id: int) -> tuple[PostbackDefinition, ...]:
    """The offer's enabled publisher postbacks, read now (outside the tracking path)."""
    from offers.definitions import Definitions

    return Definitions(None).publisher_postbacks(offer_id)


# --- The tracking path's statement (PostgreSQL) ---------------------------------------------


@functools.cache
def delivery_cte_sql(link: str, click_id: str, shape: "DeliveryShape") -> str:
    """A CTE (``delivery AS (…)``) that writes the deliveries of the record the statement's
    ``record`` CTE inserted (returning its ``id`` and ``created_at``, the partition key),
    for its click ``click_id`` (an SQL expression).

    Python chose the winning postback of every publisher that has one for this offer and
    trigger (``winning_postbacks``) and filled every macro it knows
    (``delivery_cte_params``); the statement keeps the row for the click's publisher, fills
    the click's macros (URL-encoded by ``tracking_urlencode``, migration
    tracking/0008), the record's ID and the delivery's own ID, and inserts nothing for a
    test click or when no record was inserted. Values filled by Python are encoded, so
    they hold no braces for a later ``replace`` to find. Only the macros that the rows'
    URLs hold are filled (``DeliveryShape.macros``; a statement per set of them): a
    ``replace`` for a macro a URL does not hold would change nothing, and costs. One row
    (the common case: one publisher's postback fires) travels as five plain parameters, any
    other number as one JSON text: reading the JSON cost the statement ~12 µs more
    (docs/benchmarks.md, session 21).

    No ``ON CONFLICT``: the deliveries are those of the record the statement just
    inserted, so none of them can exist yet (an insert that checks its unique indexes
    first costs more than a plain one).
    """
    macros = shape.macros
    url = "pb.url"
    for name in (name for name in CLICK_MACROS if name in macros):
        # The function only for a value it changes: most values are plain, and each call of
        # an SQL function costs more than the rest of the row (profiled: ~0.1 ms).
        value = (
            f"CASE WHEN c.{name} ~ '^[A-Za-z0-9._~-]*$' THEN c.{name} "
            f"ELSE tracking_urlencode(c.{name}) END"
        )
        url = f"replace({url}, '{{{name}}}', {value})"
    if "record_id" in macros:
        url = f"replace({url}, '{{record_id}}', record.id::text)"
    if "delivery_id" in macros:
        url = f"replace({url}, '{{delivery_id}}', d.id::text)"
    record_type = "event" if link == "event_record" else "conversion"
    sequence = _id_sequence().replace("'", "''")
    return f"""delivery AS (
    INSERT INTO tracking_delivery (id, postback_id, publisher_id, offer_id, trigger,
        record_type, {link}_id, transaction_id, url, outcome, attempt_count,
        next_attempt_at, last_error, created_at, record_created_at)
    SELECT d.id, pb.postback_id, c.publisher_id, c.offer_id, pb.trigger, '{record_type}',
        record.id, c.transaction_id, {url}, 'queued', 0, %(delivery_at)s, '', %(delivery_at)s,
        record.created_at
    FROM record
    JOIN tracking_click c ON c.id = {click_id}
    JOIN {
        given_rows_sql(
            "pb", _ROW_COLUMNS, one=shape.one_row, json_param="deliveries", prefix="delivery_"
        )
    }
         ON pb.offer_id = c.offer_id AND pb.publisher_id = c.publisher_id
    CROSS JOIN LATERAL (SELECT nextval('{sequence}'::regclass) AS id) d
    WHERE NOT c.is_test
    RETURNING id
)"""  # noqa: S608 - only names and constants are interpolated


@functools.cache
def _id_sequence() -> str:
    """The deliveries' ID sequence by name, resolved once per process: ``pg_get_serial_sequence``
    in the statement looked it up in the catalog for every row (~30 µs, auto_explain)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('tracking_delivery', 'id')")
        ((sequence,),) = cursor.fetchall()
    return sequence


#: A delivery row's columns as the statement is given them (``given_rows_sql``).
_ROW_COLUMNS = {
    "offer_id": "integer",
    "publisher_id": "integer",
    "postback_id": "integer",
    "trigger": "text",
    "url": "text",
}


@dataclass(frozen=True, slots=True)
class DeliveryShape:
    """What ``delivery_cte_sql`` is written for (a statement per shape): the macros the URLs
    leave to the statement, and whether there is one row."""

    macros: frozenset[str]
    one_row: bool


@dataclass(frozen=True, slots=True)
class DeliveryRows:
    """The parameters of ``delivery_cte_sql``: one row per (offer, publisher) whose
    postback would fire, each URL filled but for the click's and the rows' macros. An
    offer: the statement may be for one of several (the one-statement path's candidates);
    the click's offer and publisher pick the row."""

    offers: list[int]
    publishers: list[int]
    postbacks: list[int]
    triggers: list[str]
    urls: list[str]
    #: The macros left in the URLs for the statement to fill (the click's and the rows').
    left: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.postbacks)

    @property
    def shape(self) -> DeliveryShape | None:
        """Which ``delivery_cte_sql`` the statement takes (None: no rows, no delivery CTE)."""
        if not self:
            return None
        return DeliveryShape(frozenset(self.left), len(self.postbacks) == 1)

    def params(self, *, now: datetime) -> dict[str, object]:
        if len(self.postbacks) == 1:
            return {
                "delivery_offer_id": self.offers[0],
                "delivery_publisher_id": self.publishers[0],
                "delivery_postback_id": self.postbacks[0],
                "delivery_trigger": self.triggers[0],
                "delivery_url": self.urls[0],
                "delivery_at": now,
            }
        # One JSON text rather than five arrays: psycopg's list dumpers cost ~50 µs a
        # postback (cProfile), the JSON encoder a few.
        rows = zip(
            self.offers, self.publishers, self.postbacks, self.triggers, self.urls, strict=True
        )
        return {
            "deliveries": json.dumps(
                [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in rows],
                separators=(",", ":"),
            ),
            "delivery_at": now,
        }


def delivery_rows(
    fired: Iterable[tuple[dict[int, PostbackDefinition], RecordFacts | None]],
) -> DeliveryRows:
    """``DeliveryRows`` for each (winners by publisher, the record's facts on that offer;
    no facts where nothing fires)."""
    rows = DeliveryRows([], [], [], [], [])
    keep = CLICK_MACROS + ROW_MACROS
    for winners, facts in fired:
        if not winners or facts is None:
            continue
        for publisher_id, postback in sorted(winners.items()):
            names = macros_in(postback.url)
            values = record_macros(facts, names)
            values["aff_id"] = publisher_id
            rows.offers.append(facts.offer_id)
            rows.publishers.append(publisher_id)
            rows.postbacks.append(postback.id)
            rows.triggers.append(postback.trigger)
            rows.urls.append(fill_url(postback.url, values, keep=keep))
            rows.left.update(names.intersection(keep))
    return rows


# --- After an attempt (pure) -----------------------------------------------------------------


def is_retryable(result: AttemptResult) -> bool:
    """Connection errors, time-outs, 429 and 5xx may pass; a refused address never will."""
    if result.refused:
        return False
    code = result.status_code
    return code is None or code == 429 or code >= 500


def next_step(
    *, attempts_made: int, result: AttemptResult, now: datetime, jitter: float = 0.0
) -> tuple[str, datetime | None]:
    """The delivery's outcome after its ``attempts_made``-th attempt came to ``result``,
    and when to try again (None: never). ``jitter`` in [-1, 1] scales ``JITTER``."""
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Delivery.Outcome.DELIVERED, None
    if is_retryable(result) and attempts_made < MAX_ATTEMPTS:
        delay = RETRY_DELAYS[attempts_made - 1] * (1 + JITTER * jitter)
        return Delivery.Outcome.RETRYING, now + timedelta(seconds=delay)
    return Delivery.Outcome.FAILED, None


# --- The worker's reads and writes -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    url: str
    attempt_count: int
    postback_id: int | None
    record_created_at: datetime  # the partition key: updates name it (one partition each)


def _by_key(claimed: Sequence[Claimed]) -> Q:
    """The rows of ``claimed``: by ID, and by the range of their partition key, so the
    planner reads only their months' partitions (on PostgreSQL), not every month's."""
    return Q(
        pk__in=[c.id for c in claimed],
        record_created_at__gte=min(c.record_created_at for c in claimed),
        record_created_at__lte=max(c.record_created_at for c in claimed),
    )


def deliveries_claim(*, limit: int, now: datetime, lease: timedelta = LEASE) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for this worker, in one short transaction.

    ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) lets any number of workers claim at
    once without waiting for or taking each other's rows; moving ``next_attempt_at`` to
    ``now + lease`` keeps the claim after the transaction ends, and gives it back to
    everyone should this worker die before recording an attempt. (SQLite: one worker;
    its transactions take the write lock up front anyway.)
    """
    if limit <= 0:
        return []
    with transaction.atomic():
        due = (
            Delivery.objects.filter(outcome__in=Delivery.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", "url", "attempt_count", "postback_id", "record_created_at")[:limit]
        )
        claimed = [Claimed(*row) for row in due]
        # A delivery whose postback was deleted (the link is set to NULL) is not sent: the
        # manager removed that URL, maybe because it was wrong.
        orphans = [c for c in claimed if c.postback_id is None]
        if orphans:
            Delivery.objects.filter(_by_key(orphans)).update(
                outcome=Delivery.Outcome.CANCELLED, next_attempt_at=None
            )
        claimed = [c for c in claimed if c.postback_id is not None]
        if claimed:
            Delivery.objects.filter(_by_key(claimed)).update(next_attempt_at=now + lease)
    return claimed


@dataclass(frozen=True, slots=True)
class Attempted:
    delivery: Claimed
    result: AttemptResult
    at: datetime  # when the attempt started


def attempts_record(
    *, attempts: Sequence[Attempted], now: datetime, rng: random.Random | None = None
) -> list[int]:
    """Record attempts and each delivery's next step, in one transaction. Returns the IDs
    of the postbacks whose deliveries just failed (for ``postback_disable_if_failing``).

    A delivery that someone settled meanwhile (cancelled, superseded) keeps that outcome;
    its attempt is still recorded. On PostgreSQL a batch is two statements whatever its
    size (the worker records hundreds a second); elsewhere one update per delivery.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
    steps = []
    for item in attempts:
        outcome, next_at = next_step(
            attempts_made=item.delivery.attempt_count + 1,
            result=item.result,
            now=now,
            jitter=rng.uniform(-1, 1),
        )
        finished = outcome in (Delivery.Outcome.DELIVERED, Delivery.Outcome.FAILED)
        steps.append((item, outcome, next_at, now if finished else None))
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery_id=item.delivery.id,
                record_created_at=item.delivery.record_created_at,
                at=item.at,
                url=mask_url(item.delivery.url)[:4000],
                status_code=item.result.status_code,
                duration_ms=item.result.duration_ms,
                response=item.result.body,
                error=item.result.error[:500],
            )
            for item in attempts
        )
        if connection.vendor == "postgresql":
            updated = _record_steps_sql(steps)
        else:
            updated = set()
            for item, outcome, next_at, finished_at in steps:
                if Delivery.objects.filter(
                    pk=item.delivery.id,
                    record_created_at=item.delivery.record_created_at,
                    outcome__in=Delivery.PENDING,
                ).update(
                    outcome=outcome,
                    attempt_count=F("attempt_count") + 1,
                    next_attempt_at=next_at,
                    last_status_code=item.result.status_code,
                    last_error=item.result.error[:500],
                    finished_at=finished_at,
                ):
                    updated.add(item.delivery.id)
    return sorted(
        {
            item.delivery.postback_id
            for item, outcome, _, _ in steps
            if outcome == Delivery.Outcome.FAILED
            and item.delivery.postback_id
            and item.delivery.id in updated
        }
    )


_RECORD_STEPS_SQL = """
UPDATE tracking_delivery AS d
SET outcome = s.outcome, attempt_count = d.attempt_count + 1,
    next_attempt_at = s.next_attempt_at, last_status_code = s.status_code,
    last_error = s.error, finished_at = s.finished_at
FROM unnest(%(ids)s::bigint[], %(keys)s::timestamptz[], %(outcomes)s::text[],
            %(next)s::timestamptz[], %(codes)s::smallint[], %(errors)s::text[],
            %(finished)s::timestamptz[])
     AS s(id, record_created_at, outcome, next_attempt_at, status_code, error, finished_at)
WHERE d.id = s.id AND d.record_created_at = s.record_created_at
  AND d.record_created_at BETWEEN %(first)s AND %(last)s
  AND d.outcome IN ('queued', 'retrying')
RETURNING d.id
"""


def _record_steps_sql(steps: list) -> set[int]:
    """Each delivery's next step in one statement (PostgreSQL). The partition key's range
    (``first``, ``last``) lets the planner leave out the months no delivery is in."""
    keys = [item.delivery.record_created_at for item, *_ in steps]
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_STEPS_SQL,
            {
                "ids": [item.delivery.id for item, *_ in steps],
                "keys": keys,
                "first": min(keys),
                "last": max(keys),
                "outcomes": [outcome for _, outcome, _, _ in steps],
                "next": [next_at for _, _, next_at, _ in steps],
                "codes": [item.result.status_code for item, *_ in steps],
                "errors": [item.result.error[:500] for item, *_ in steps],
                "finished": [finished_at for *_, finished_at in steps],
            },
        )
        return {row[0] for row in cursor.fetchall()}


def postback_disable_if_failing(*, postback_id: int, now: datetime) -> bool:
    """Disable the postback when its last ``DISABLE_AFTER`` deliveries finished within
    ``DISABLE_WINDOW`` all failed (serves: delivery_postback_finished). True if it was."""
    last = list(
        Delivery.objects.filter(postback_id=postback_id, finished_at__gte=now - DISABLE_WINDOW)
        .order_by("-finished_at", "-id")
        .values_list("outcome", flat=True)[:DISABLE_AFTER]
    )
    if len(last) < DISABLE_AFTER or any(o != Delivery.Outcome.FAILED for o in last):
        return False
    reason = (
        f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: its last {DISABLE_AFTER} "
        "deliveries all failed. Fix the URL or the publisher's server, then enable it again."
    )
    return bool(
        PublisherPostback.objects.filter(pk=postback_id, enabled=True).update(
            enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now
        )
    )


# --- What account managers do ----------------------------------------------------------------


class DeliveryPending(Exception):
    """The delivery is still queued or retrying: the worker will send it anyway."""


def delivery_resend(*, delivery_id: int, now: datetime | None = None) -> Delivery:
    """Queue a finished delivery again: same row, same ``{delivery_id}``, same URL, a fresh
    round of attempts (its earlier attempts stay in the log). A delivery still queued or
    retrying is refused (``DeliveryPending``): it may be in a worker's hands right now, and
    resending it could send it twice at once."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = (
            Delivery.objects.filter(pk=delivery_id)
            .exclude(outcome__in=Delivery.PENDING)
            .update(
                outcome=Delivery.Outcome.QUEUED,
                attempt_count=0,
                next_attempt_at=now,
                finished_at=None,
            )
        )
        delivery = Delivery.objects.get(pk=delivery_id)
    if not updated:
        raise DeliveryPending(f"Delivery {delivery_id} is already {delivery.outcome}.")
    return delivery


def deliveries_write(
    *,
    rows: DeliveryRows,
    link: str,
    click_id: int,
    record_id: int,
    record_created_at: datetime,
    now: datetime,
) -> None:
    """``delivery_cte_sql`` for other databases (SQLite): the accepted record's deliveries,
    written with the ORM in the caller's transaction (``link``: the record's column,
    ``conversion_id`` or ``event_record_id``)."""
    click = (
        Click.objects.filter(pk=click_id)
        .values("offer_id", "publisher_id", "is_test", "transaction_id", *CLICK_MACROS)
        .get()
    )
    if click["is_test"]:
        return
    values: dict[str, object] = {name: click[name] for name in CLICK_MACROS}
    values["record_id"] = record_id
    for offer_id, publisher_id, postback_id, trigger, url in zip(
        rows.offers, rows.publishers, rows.postbacks, rows.triggers, rows.urls, strict=True
    ):
        if (offer_id, publisher_id) != (click["offer_id"], click["publisher_id"]):
            continue
        url = fill_url(url, values, keep=("delivery_id",))
        delivery = Delivery.objects.create(
            postback_id=postback_id,
            publisher_id=publisher_id,
            offer_id=offer_id,
            trigger=trigger,
            record_type="event" if link == "event_record_id" else "conversion",
            **{link: record_id},
            transaction_id=click["transaction_id"],
            url=url,
            next_attempt_at=now,
            created_at=now,
            record_created_at=record_created_at,
        )
        # {delivery_id} is the row's own ID: known once it is inserted.
        if "{delivery_id}" in url:
            url = fill_url(url, {"delivery_id": delivery.pk})
            Delivery.objects.filter(pk=delivery.pk).update(url=url)


def sample_delivery_url(*, postback: PublisherPostback, offer: Offer | None, now: datetime) -> str:
    """The postback's URL filled for a test record (the admin's Test button): the offer's
    own values where there is one, test values for the record, ``0`` for its IDs."""
    event = postback.event
    facts = RecordFacts(
        transaction_id="TEST" + "0" * 28,
        offer_id=offer.pk if offer else 0,
        offer_name=offer.name if offer else "",
        publisher_id=postback.publisher_id,
        record_type="event" if postback.trigger == "event" else "conversion",
        event_id=event.pk if event else None,
        event_name=event.name if event else "",
        payout=offer.payout_value if offer else Decimal("0"),
        currency=offer.currency if offer else "USD",
        status=APPROVED,
        status_reason="",
        created_at=now,
        record_id=0,
        click={name: "test" if name == "aff_sub" else "" for name in CLICK_MACROS},
    )
    return delivery_url(postback.url, facts, delivery_id=0)
