"""Caps' counters (docs/postbacks.md "Caps"): what the approved records of each cap's period
add up to, kept in ``CapCounter`` rows in the transactions that write or change records.

Periods and each cap's use in the current period (for the offer page and the API) are
read in offers/caps.py. The rules (which caps a record counts against, the status a full
cap gives it) are pure functions in tracking/rules.py; this module writes the counters.

**Shards and allowances.** A cap's use in a period is the sum of ``CapCounter.SHARDS``
rows, so that the postbacks of one offer do not all queue for one row lock, held to each
one's commit. Each shard has an ``allowance``: what its ``used`` may grow to. The
allowances of a period add up to no more than the cap's limit, and are changed only by a
transaction holding the locks of all the period's shards. A record takes a cap's slot one
of two ways:

- **Alone** (the one-statement path, tracking/postback.py): it locks one shard picked at
  random and adds to it only where the shard's allowance holds the record, and the
  allowances were shared out for the limit the record was decided on (``balanced_for``).
  Every shard stays within its allowance, so the period's sum stays within the limit,
  however many records take slots at once.
- **Exact** (the ordinary path, and every record the first way did not fit): it locks every
  shard of the period in order, reads their sum, takes a slot only where ``sum < limit``,
  and shares out again what is left below the limit: each shard's allowance becomes its use
  plus an equal share (``_share_out``). Near the limit a share is smaller than a record,
  no shard holds one, and every record counts the exact way: of any number of simultaneous
  records near the limit, exactly as many get a slot as there are slots.

A new period's shards start with nothing shared out (its first record counts the exact way),
and a changed limit no longer matches ``balanced_for`` (the next record counts the exact
way and shares out for the new limit); a manager's approval past the limit, or a rejection
that frees a slot, shares out again in its own transaction.

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
from decimal import ROUND_DOWN, Decimal

from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from offers.caps import cap_usage, local_day, period_bounds, period_start
from offers.definitions import CapDefinition, OfferDefinition, database_name
from offers.models import CapCounter, OfferCap
from tracking import rules
from tracking.models import Click, Conversion, EventRecord, RecordStatus


def _make(pairs: "Iterable[tuple[int, date]]") -> set[int]:
    """Make the counter rows of these (cap ID, period start) pairs where missing, for the caps
    that still exist, and return those caps' IDs.

    A cap deleted since the caller read the definitions gets no rows: its counters' foreign
    key (checked at commit) would fail the caller's whole transaction. On PostgreSQL the caps
    found are locked ``FOR KEY SHARE`` to the end of the caller's transaction, so none can be
    deleted under the rows made for it (a cap's deletion locks it ``FOR UPDATE`` first, then
    deletes its counters: offers.services); SQLite runs one writer at a time. The counter
    rows of a period are made by its first record; a race to make them is settled by the
    unique constraint (the loser's insert does nothing)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return set()
    cap_ids = sorted({cap_id for cap_id, _ in pairs})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            columns = [[cap_id for cap_id, _ in pairs], [start for _, start in pairs]]
            cursor.execute(_MAKE_SQL, [cap_ids, *columns, CapCounter.SHARDS - 1])
            return {cap_id for (cap_id,) in cursor.fetchall()}
    found = set(OfferCap.objects.filter(pk__in=cap_ids).values_list("pk", flat=True))
    CapCounter.objects.bulk_create(
        [
            CapCounter(cap_id=cap_id, period_start=start, shard=shard)
            for cap_id, start in pairs
            if cap_id in found
            for shard in range(CapCounter.SHARDS)
        ],
        ignore_conflicts=True,
    )
    return found


_MAKE_SQL = f"""
WITH cap AS (
    SELECT id FROM {OfferCap._meta.db_table} WHERE id = ANY(%s::integer[]) FOR KEY SHARE
), made AS (
    INSERT INTO {CapCounter._meta.db_table}
        (cap_id, period_start, shard, used, allowance, balanced_for)
    SELECT p.cap_id, p.start, s.shard, 0, 0, NULL
    FROM unnest(%s::integer[], %s::date[]) AS p(cap_id, start)
    JOIN cap ON cap.id = p.cap_id
    CROSS JOIN generate_series(0, %s) AS s(shard)
    ON CONFLICT DO NOTHING
)
SELECT id FROM cap
"""  # noqa: S608 - table names only


#: The function the one-statement path (tracking/postback.py) inserts a capped record by:
#: ``TAKEN(taken, caps)`` is true where all of the record's ``caps`` caps took it, false where
#: none did, and raises ``TAKEN_IN_PART`` where only some did, which undoes the whole
#: statement (PostgreSQL only; made by migration tracking/0014_caps_taken).
TAKEN = "ct_caps_taken"
#: Its SQLSTATE (a class of our own: no PostgreSQL error shares it).
TAKEN_IN_PART = "CT001"
TAKEN_SQL = f"""
CREATE OR REPLACE FUNCTION {TAKEN}(taken bigint, caps integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF taken = caps THEN
        RETURN TRUE;
    ELSIF taken = 0 THEN
        RETURN FALSE;
    END IF;
    RAISE EXCEPTION 'a record took % of its % caps', taken, caps
        USING ERRCODE = '{TAKEN_IN_PART}';
END
$$"""


def is_taken_in_part(error: Exception) -> bool:
    """Whether a database error is ``TAKEN`` undoing a statement."""
    return getattr(error.__cause__, "sqlstate", None) == TAKEN_IN_PART


#: The (database, cap, period start) counter rows this process has made sure exist.
_ensured: set[tuple[str, int, date]] = set()


def counters_ensure(counters: "Iterable[tuple[int, date]]") -> bool:
    """Make the counter rows of these (cap ID, period start) pairs where this process has not
    yet: one statement on a period's first postback, none after. False where a cap is gone
    (deleted since this process cached the definitions): the one-statement path then leaves
    the postback to the ordinary path, which reads the definitions as they are now. (Should a
    row be missing after all, rolled back with a transaction around it, the one-statement
    path finds no room and the ordinary path, which makes its rows every time, takes the
    postback.)"""
    name = database_name()
    missing = sorted({pair for pair in counters if (name, *pair) not in _ensured})
    if not missing:
        return True
    found = _make(missing)
    _ensured.update((name, cap_id, start) for cap_id, start in missing if cap_id in found)
    return all(cap_id in found for cap_id, _ in missing)


def _periods(pairs: "Iterable[tuple[int, date]]") -> Q:
    wanted = Q(pk__in=[])
    for cap_id, start in pairs:
        wanted |= Q(cap_id=cap_id, period_start=start)
    return wanted


def _lock(pairs: "Iterable[tuple[int, date]]") -> list[CapCounter]:
    """Every shard of these periods (made where missing), locked in (cap, shard) order; none
    of a cap deleted since the caller read it (``_make``)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return []
    found = _make(pairs)
    pairs = [(cap_id, start) for cap_id, start in pairs if cap_id in found]
    if not pairs:
        return []
    return list(
        CapCounter.objects.select_for_update()
        .filter(_periods(pairs))
        .order_by("cap_id", "shard")
        .only("id", "cap_id", "shard", "used", "balanced_for")
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


#: A share of an allowance is in cents, like the counters.
_CENT = Decimal("0.01")


def _share_out(limit: Decimal, shards: list[CapCounter], *, used: Decimal) -> None:
    """Share out what is left of ``limit`` when the period's ``shards`` (all of them, locked
    by this transaction) add up to ``used``: each shard may grow by an equal share, in whole
    cents rounded down, so the allowances add up to no more than the limit; none when
    nothing is left (every record then counts the exact way)."""
    left = limit - used
    share = (left / CapCounter.SHARDS).quantize(_CENT, ROUND_DOWN) if left > 0 else Decimal(0)
    CapCounter.objects.filter(pk__in=[shard.pk for shard in shards]).update(
        allowance=F("used") + share, balanced_for=limit
    )


def take_slots(decision: rules.Decision, *, created_at: datetime) -> tuple[str, str, bool]:
    """Take a slot of each of ``decision.caps`` for the record just written (in the caller's
    transaction), the exact way (module docstring). The record's status by
    ``rules.capped_status``; the slots are kept only when it is approved.
    (status, reason, set by the rule)"""
    day = local_day(created_at)
    full: list[CapDefinition] = []
    with transaction.atomic():
        for cap in sorted(decision.caps, key=lambda c: c.id):
            start = period_start(cap.period, day)
            shards = _lock([(cap.id, start)])
            if not shards:
                continue  # deleted since the definitions were read: it caps nothing now
            used = sum((shard.used for shard in shards), Decimal(0))
            if used >= cap.limit:
                full.append(cap)
                if any(shard.balanced_for != cap.limit for shard in shards):
                    _share_out(cap.limit, shards, used=used)
                continue
            amount = rules.cap_amount(cap, decision)
            CapCounter.objects.filter(pk=shards[0].pk).update(used=F("used") + amount)
            _share_out(cap.limit, shards, used=used + amount)
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
        if not shards:
            continue  # deleted meanwhile: nothing left to count
        used = sum((shard.used for shard in shards), Decimal(0))
        if now:
            CapCounter.objects.filter(pk=shards[0].pk).update(used=F("used") + amount)
            _share_out(cap.limit, shards, used=used + amount)
            continue
        left = amount
        for shard in sorted(shards, key=lambda s: s.used, reverse=True):
            if left <= 0:
                break
            taken = min(shard.used, left)
            if taken > 0:
                CapCounter.objects.filter(pk=shard.pk).update(used=F("used") - taken)
                left -= taken
        _share_out(cap.limit, shards, used=max(used - amount, Decimal(0)))


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
    with transaction.atomic():
        shards = _lock([(cap.pk, start)])
        used = _approved_sum(cap, day)
        CapCounter.objects.filter(cap=cap, period_start=start).update(used=Decimal(0))
        CapCounter.objects.filter(cap=cap, period_start=start, shard=0).update(used=used)
        _share_out(cap.limit, shards, used=used)


def hard_cap_full(offer: OfferDefinition, *, publisher_id: int, at: datetime) -> bool:
    """Whether a hard cap of the offer, or of this publisher on it, is full for the current
    period (a click is then sent to the offer's fallback URL). One query, and only for an
    offer with hard caps."""
    hard = [c for c in offer.caps if c.is_hard and c.applies_to(publisher_id)]
    if not hard:
        return False
    used = cap_usage(hard, day=local_day(at))
    return any(used[cap.id] >= cap.limit for cap in hard)
