"""Caps' counters (docs/postbacks.md "Caps"): what the approved records of each cap's period
add up to, kept in ``CapCounter`` rows in the transactions that write or change records.

Periods and each cap's use in the current period (for the offer page and the API) are
read in offers/caps.py. The rules (which caps a record counts against, the status a full
cap gives it) are pure functions in tracking/rules.py; this module writes the counters.

**Shards.** A cap's use in a period is the sum of ``CapCounter.SHARDS`` rows, so that the
postbacks of one offer do not all queue for one row lock, held to each one's commit.
A record takes a cap's slot one of two ways:

- **Shared**, far from the limit (the one-statement path, tracking/postback.py): it reads
  the shards' sum without a lock and, where ``sum + margin <= limit`` and the period is not
  ``exact``, adds to one shard picked at random, locking that row only (re-checking under
  the lock that the period did not turn ``exact`` meanwhile). ``margin`` (``headroom``)
  covers what every other transaction that can be open at that moment may add unseen:
  at most one record each, and PostgreSQL never has more open than ``max_connections``.
  So however the shared records interleave, the sum never passes the limit.
- **Exact**, near the limit (and always in the ordinary path): it locks every shard of the
  period in order, reads their sum, takes a slot only where ``sum < limit``, and, near the
  limit, marks the period ``exact``: every record after it goes the exact way, and a shared
  record that read the sum before but had not yet locked its shard finds the mark under the
  lock and does not count. So of any number of simultaneous records near the limit, exactly
  as many get a slot as there are slots.

Money caps go the shared way only for records worth at most a quarter of the limit shared
out among ``max_connections`` (``headroom``), and while three quarters of the limit are
left; a bigger record is counted the exact way and marks its period.

The functions:

- ``take_slots``: a new record takes a slot of each of its caps the exact way. Where a cap
  is full, or the record is not approved for another reason, nothing it took is kept (a
  savepoint).
- ``follow_status``: a record's status change adds it to or takes it from its caps'
  counters (rejecting frees its slot; nothing is approved automatically when one frees).
- ``counters_ensure``: the counter rows the one-statement path takes its slots in, made
  before it runs (once per cap and period in each process): that statement locks and
  updates existing rows only, so a row it does not find only sends the postback the
  ordinary way.
- ``counter_start``: a new cap's counter for the current period starts at what the approved
  records of that period already add up to (the only count over records, once per cap).

Counters are locked in (cap ID, shard) order, so two transactions never wait on each
other's counters in opposite orders.
"""

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.db.models import F, Q, Sum
from django.utils import timezone

from offers.caps import cap_usage, local_day, period_bounds, period_start
from offers.definitions import CapDefinition, OfferDefinition
from offers.models import CapCounter, OfferCap
from tracking import rules
from tracking.models import Click, Conversion, EventRecord, RecordStatus

#: Of a money cap, the part the shared way may leave to records in flight (``headroom``).
MONEY_SHARED_PART = Decimal(4)


def headroom(cap: "CapDefinition | OfferCap", amount: Decimal, in_flight: int) -> Decimal | None:
    """The margin a record adding ``amount`` to ``cap`` must find below the limit to take
    its slot the shared way: what ``in_flight`` other open transactions may add unseen, each
    at most one record of at most the cap's bound (1 for a conversions cap; for a money cap,
    the limit ÷ (4 × ``in_flight``)). None: the record is bigger than the bound and is
    counted the exact way."""
    if cap.metric == OfferCap.Metric.CONVERSIONS:
        bound = Decimal(1)
    else:
        bound = cap.limit / (MONEY_SHARED_PART * in_flight)
    if amount > bound:
        return None
    return bound * in_flight


def is_near(used: Decimal, limit: Decimal, margin: Decimal | None) -> bool:
    """Whether a period at ``used`` must be counted the exact way (``headroom``'s margin)."""
    return margin is None or used + margin > limit


#: max_connections per database alias, read once per connection (a new connection may find
#: a restarted server with another setting).
_in_flight: dict[str, int] = {}


def in_flight_bound() -> int:
    """The most transactions that can be open at once on the database: PostgreSQL's
    ``max_connections`` (SQLite writes one transaction at a time)."""
    alias = connection.alias
    if alias not in _in_flight:
        if connection.vendor != "postgresql":
            _in_flight[alias] = 1
        else:
            with connection.cursor() as cursor:
                cursor.execute("SHOW max_connections")
                _in_flight[alias] = int(cursor.fetchone()[0])
    return _in_flight[alias]


def _forget_in_flight(sender: object, connection: object, **kwargs: object) -> None:
    _in_flight.pop(connection.alias, None)


connection_created.connect(_forget_in_flight, dispatch_uid="tracking.caps.in_flight")


def _make(pairs: "Iterable[tuple[int, date]]") -> None:
    # The counter rows of a period are made by its first record; a race to make them is
    # settled by the unique constraint (the loser's insert does nothing).
    CapCounter.objects.bulk_create(
        [
            CapCounter(cap_id=cap_id, period_start=start, shard=shard)
            for cap_id, start in pairs
            for shard in range(CapCounter.SHARDS)
        ],
        ignore_conflicts=True,
    )


#: The (database, cap, period start) counter rows this process has made sure exist.
_ensured: set[tuple[str, int, date]] = set()


def counters_ensure(counters: "list[tuple[int, date]]") -> None:
    """Make the counter rows of these (cap ID, period start) pairs where this process has not
    yet: one statement on a period's first postback, none after. (Should a row be missing
    after all, rolled back with a transaction around it, the one-statement path finds no
    room and the ordinary path, which makes its rows every time, takes the postback.)"""
    name = connection.settings_dict["NAME"]
    missing = sorted({pair for pair in counters if (name, *pair) not in _ensured})
    if not missing:
        return
    _make(missing)
    _ensured.update((name, cap_id, start) for cap_id, start in missing)


def _periods(pairs: "Iterable[tuple[int, date]]") -> Q:
    wanted = Q(pk__in=[])
    for cap_id, start in pairs:
        wanted |= Q(cap_id=cap_id, period_start=start)
    return wanted


def _lock(pairs: "Iterable[tuple[int, date]]") -> list[CapCounter]:
    """Every shard of these periods (made where missing), locked in (cap, shard) order."""
    pairs = sorted(set(pairs))
    if not pairs:
        return []
    _make(pairs)
    return list(
        CapCounter.objects.select_for_update()
        .filter(_periods(pairs))
        .order_by("cap_id", "shard")
        .only("id", "cap_id", "shard", "used", "exact")
    )


def counters_lock(caps: "Iterable[CapDefinition | OfferCap]", *, day: date) -> None:
    """Lock the counters of ``caps``' periods holding ``day`` (made where missing), in cap ID
    order, in the caller's transaction.

    Every transaction that writes a record and its slots, or changes a record's status and
    its counters, takes its counters' locks before it writes the record: the record's hourly
    totals trigger locks a totals row, and the one-statement path (tracking/postback.py)
    locks the counters first and the totals row last. Taken in the same order everywhere,
    the two never wait on each other crosswise (a deadlock)."""
    _lock((cap.id, period_start(cap.period, day)) for cap in caps)


def _mark_if_near(
    cap: "CapDefinition | OfferCap",
    shards: list[CapCounter],
    used: Decimal,
    amount: Decimal,
    *,
    in_flight: int,
) -> None:
    """Mark the period of ``shards`` (locked by this transaction) ``exact`` where ``used``
    is near the cap's limit for a record of ``amount``: the shared way stops there (module
    docstring)."""
    if is_near(used, cap.limit, headroom(cap, amount, in_flight)) and not all(
        shard.exact for shard in shards
    ):
        CapCounter.objects.filter(pk__in=[shard.pk for shard in shards]).update(exact=True)


def take_slots(decision: rules.Decision, *, created_at: datetime) -> tuple[str, str, bool]:
    """Take a slot of each of ``decision.caps`` for the record just written (in the caller's
    transaction), the exact way (module docstring). The record's status by
    ``rules.capped_status``; the slots are kept only when it is approved.
    (status, reason, set by the rule)"""
    day = local_day(created_at)
    full: list[CapDefinition] = []
    in_flight = in_flight_bound()
    with transaction.atomic():
        for cap in sorted(decision.caps, key=lambda c: c.id):
            start = period_start(cap.period, day)
            shards = _lock([(cap.id, start)])
            used = sum((shard.used for shard in shards), Decimal(0))
            if used >= cap.limit:
                full.append(cap)
                continue
            amount = rules.cap_amount(cap, decision)
            CapCounter.objects.filter(pk=shards[0].pk).update(used=F("used") + amount)
            _mark_if_near(cap, shards, used, amount, in_flight=in_flight)
        status, reason, by_rule = rules.capped_status(decision, full)
        if status != RecordStatus.APPROVED:
            transaction.set_rollback(True)
    return status, reason, by_rule


def preview(decision: rules.Decision, *, created_at: datetime) -> tuple[str, str, bool]:
    """The status ``take_slots`` would give the record now, read without writing (the
    admin's dry run)."""
    used = cap_usage(decision.caps, day=local_day(created_at))
    full = [cap for cap in decision.caps if used[cap.id] >= cap.limit]
    return rules.capped_status(decision, full)


def record_caps(record: Conversion | EventRecord) -> list[tuple[OfferCap, Decimal]]:
    """The caps an existing record counts against, with what it adds to each."""
    caps = list(OfferCap.objects.filter(offer_id=record.offer_id).order_by("pk"))
    if not caps:
        return []
    if Click.objects.filter(pk=record.click_id, is_test=True).exists():
        return []
    offer_currency = record.offer.currency
    is_event = isinstance(record, EventRecord)
    found = []
    for cap in caps:
        if cap.publisher_id is not None and cap.publisher_id != record.publisher_id:
            continue
        if cap.metric == OfferCap.Metric.CONVERSIONS:
            if not is_event:
                found.append((cap, Decimal(1)))
        elif record.currency == offer_currency:
            found.append((cap, record.payout if cap.metric == "payout" else record.revenue))
    return found


def follow_status(record: Conversion | EventRecord, *, previous: str, status: str) -> None:
    """Keep the counters of ``record``'s caps equal to what the approved records add up to,
    as its status goes from ``previous`` to ``status`` (in the status change's transaction).
    Approving adds it whatever the limit: a manager's decision. Un-approving takes it from
    the shards that hold the most, none below 0."""
    was, now = previous == RecordStatus.APPROVED, status == RecordStatus.APPROVED
    if was == now:
        return
    day = local_day(record.created_at)
    found = record_caps(record)
    starts = {cap.pk: period_start(cap.period, day) for cap, _ in found}
    locked = _lock(starts.items())
    for cap, amount in found:
        shards = [shard for shard in locked if shard.cap_id == cap.pk]
        if now:
            CapCounter.objects.filter(pk=shards[0].pk).update(used=F("used") + amount)
            used = sum((shard.used for shard in shards), amount)
            _mark_if_near(cap, shards, used, amount, in_flight=in_flight_bound())
            continue
        for shard in sorted(shards, key=lambda s: s.used, reverse=True):
            if amount <= 0:
                break
            taken = min(shard.used, amount)
            if taken > 0:
                CapCounter.objects.filter(pk=shard.pk).update(used=F("used") - taken)
                amount -= taken


def _approved_sum(cap: OfferCap, day: date) -> Decimal:
    """What the approved records of the cap's period holding ``day`` add up to (a count over
    the records: only when a cap is made)."""
    start, end = period_bounds(cap.period, day)
    models = (
        [Conversion] if cap.metric == OfferCap.Metric.CONVERSIONS else [Conversion, EventRecord]
    )
    total = Decimal(0)
    for model in models:
        records = model.objects.filter(
            offer_id=cap.offer_id, status=RecordStatus.APPROVED, click__is_test=False
        )
        if start is not None:
            records = records.filter(created_at__gte=start, created_at__lt=end)
        if cap.publisher_id is not None:
            records = records.filter(publisher_id=cap.publisher_id)
        if cap.metric == OfferCap.Metric.CONVERSIONS:
            total += records.count()
        else:
            records = records.filter(currency=cap.offer.currency)
            total += records.aggregate(s=Sum(cap.metric))["s"] or Decimal(0)
    return total


def counter_start(cap: OfferCap) -> None:
    """Start a new cap's counter for the current period at what its approved records add up
    to (a cap set mid-month counts the month's conversions so far)."""
    day = local_day(timezone.now())
    start = period_start(cap.period, day)
    _make([(cap.pk, start)])
    CapCounter.objects.filter(cap=cap, period_start=start).update(used=Decimal(0))
    CapCounter.objects.filter(cap=cap, period_start=start, shard=0).update(
        used=_approved_sum(cap, day)
    )


def hard_cap_full(offer: OfferDefinition, *, publisher_id: int, at: datetime) -> bool:
    """Whether a hard cap of the offer, or of this publisher on it, is full for the current
    period (a click is then sent to the offer's fallback URL). One query, and only for an
    offer with hard caps."""
    hard = [c for c in offer.caps if c.is_hard and c.applies_to(publisher_id)]
    if not hard:
        return False
    used = cap_usage(hard, day=local_day(at))
    return any(used[cap.id] >= cap.limit for cap in hard)
