"""Caps' periods and use (docs/postbacks.md "Caps"): calendar periods in TIME_ZONE, and what
each cap's counter says for the current period. The counters are written by tracking
(tracking/caps.py) in the transactions that write or change records."""

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Q, Sum
from django.utils import timezone

from offers.models import CapCounter, OfferCap

if TYPE_CHECKING:
    from offers.definitions import CapDefinition

#: The period of a ``total`` cap.
TOTAL_START = date(1970, 1, 1)


def period_start(period: str, day: date) -> date:
    """The first day of the period of ``period`` holding ``day`` (a date in TIME_ZONE): the day
    itself, the Monday of its week, the 1st of its month, or ``TOTAL_START``."""
    if period == OfferCap.Period.DAY:
        return day
    if period == OfferCap.Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period == OfferCap.Period.MONTH:
        return day.replace(day=1)
    return TOTAL_START


def period_bounds(period: str, day: date) -> tuple[datetime | None, datetime | None]:
    """The period holding ``day`` as aware datetimes in TIME_ZONE [start, end); a total: none."""
    if period == OfferCap.Period.TOTAL:
        return None, None
    start = period_start(period, day)
    if period == OfferCap.Period.DAY:
        end = start + timedelta(days=1)
    elif period == OfferCap.Period.WEEK:
        end = start + timedelta(days=7)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    tz = timezone.get_current_timezone()
    as_time = datetime.min.time()
    return (
        timezone.make_aware(datetime.combine(start, as_time), tz),
        timezone.make_aware(datetime.combine(end, as_time), tz),
    )


def local_day(at: datetime) -> date:
    """The day ``at`` falls on in TIME_ZONE (the zone periods follow, whatever zone a request
    may have activated; read without the active-zone lookup, which the postback path pays
    for on every capped postback)."""
    return timezone.localtime(at, timezone.get_default_timezone()).date()


def cap_usage(
    caps: "Iterable[OfferCap | CapDefinition]", *, day: date | None = None
) -> dict[int, Decimal]:
    """Each cap's use, by cap ID, in its period holding ``day`` (today in TIME_ZONE by
    default; 0 where no record counted yet): the sum of its counter's shards
    (tracking/caps.py). One query."""
    caps = list(caps)
    if not caps:
        return {}
    day = day or local_day(timezone.now())
    wanted = Q(pk__in=[])
    for cap in caps:
        wanted |= Q(cap_id=cap.id, period_start=period_start(cap.period, day))
    used = dict(
        CapCounter.objects.filter(wanted)
        .values("cap_id")
        .annotate(total=Sum("used"))
        .order_by()
        .values_list("cap_id", "total")
    )
    return {cap.id: used.get(cap.id, Decimal(0)) for cap in caps}


#: What to do when a cap is made: tracking registers the start of its counter (what the
#: period's approved records already add up to), which only tracking can count.
_on_cap_created: list[Callable[[OfferCap], None]] = []


def on_cap_created(hook: Callable[[OfferCap], None]) -> None:
    if hook not in _on_cap_created:
        _on_cap_created.append(hook)


def cap_created(cap: OfferCap) -> None:
    """Call after saving a new cap (offers.services and the admin do)."""
    for hook in _on_cap_created:
        hook(cap)
