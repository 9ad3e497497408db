"""What the tracking path reads of the definitions on every hit, cached per process.

A click needs its offer's status and destination; a postback its click's offer, that
offer's advertiser's token and the offer's events with their revenue and payout rules.
These change a few times a day and are read thousands of times a second, so each process
keeps them in memory, loaded on first use.

The cache is exact, not "fresh enough": every write to advertisers, offers and events sets
a new definitions version (a statement trigger, migration ``offers/0002``), and the
tracking path reads that version *in the statement it runs anyway* (the click lookup, the
click insert) and asks ``definitions(version=…)`` for the cache of exactly that version. A
different version drops the whole cache. So a postback is judged by the rules committed
when its own statement ran, as if it had read them from the tables; an edit counts from
the next hit on, in every process and on every server.

On SQLite there is no version (``VERSION_SQL`` is ``NULL``): each request gets a cache of
its own, so every hit reads the definitions (in-process, cheap).
"""

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Exists, OuterRef, Q, QuerySet

from offers.allow_list import EMPTY, AllowList
from offers.models import Advertiser, Event, Offer, OfferCap, PublisherPostback
from offers.money import earned, is_percentage
from offers.tokens import token_digest

#: The current definitions version, as an SQL expression a statement can select.
VERSION_SQL = {
    "postgresql": "(SELECT version FROM offers_definitions_version WHERE id = 1)",
}


def version_sql() -> str:
    return VERSION_SQL.get(connection.vendor, "NULL")


@dataclass(frozen=True, slots=True)
class MoneyRules:
    """How a conversion or an event earns: revenue and payout (docs/postbacks.md "Money")."""

    revenue_type: str
    revenue_value: Decimal
    payout_type: str
    payout_value: Decimal

    @property
    def needs_amount(self) -> bool:
        """A CPS rule on either side is a percentage of the sale: ``amount`` is required."""
        return is_percentage(self.revenue_type) or is_percentage(self.payout_type)

    def revenue(self, amount: Decimal | None) -> Decimal:
        return earned(money_type=self.revenue_type, value=self.revenue_value, amount=amount)

    def payout(self, amount: Decimal | None) -> Decimal:
        return earned(money_type=self.payout_type, value=self.payout_value, amount=amount)


@dataclass(frozen=True, slots=True)
class OfferDefinition:
    id: int
    advertiser_id: int
    postback_token: str  # the advertiser's
    status: str
    destination_url: str
    currency: str
    money: MoneyRules
    name: str = ""  # the {offer_name} macro of publisher postbacks
    # docs/postbacks.md "Offer rules" (the defaults: no rule).
    allow_list: AllowList = EMPTY  # the advertiser's (check 3a)
    conversion_window_days: int | None = None
    min_conversion_seconds: int = 0
    fallback_url: str = ""
    caps: tuple["CapDefinition", ...] = ()

    @property
    def is_active(self) -> bool:
        return self.status == Offer.Status.ACTIVE


@dataclass(frozen=True, slots=True)
class CapDefinition:
    """One of an offer's caps (``offers.OfferCap``)."""

    id: int
    metric: str  # OfferCap.Metric
    period: str  # OfferCap.Period
    limit: Decimal
    publisher_id: int | None  # None: the whole offer
    mode: str  # OfferCap.Mode

    @property
    def is_hard(self) -> bool:
        return self.mode == OfferCap.Mode.HARD

    @property
    def counts_money(self) -> bool:
        return self.metric != OfferCap.Metric.CONVERSIONS

    def applies_to(self, publisher_id: int) -> bool:
        return self.publisher_id is None or self.publisher_id == publisher_id


@dataclass(frozen=True, slots=True)
class EventDefinition:
    id: int
    offer_id: int
    name: str
    allow_multiple: bool
    money: MoneyRules
    wait_for_conversion_minutes: int = 0


@dataclass(frozen=True, slots=True)
class OfferEvents:
    """An offer's events by event ID and by name (names are case sensitive)."""

    by_id: dict[int, EventDefinition]
    by_name: dict[str, EventDefinition]
    #: Whether any of them waits for its conversion (docs/postbacks.md "Early events"): an
    #: accepted conversion then judges its click's kept events.
    any_waits: bool = False


@dataclass(frozen=True, slots=True)
class PostbackDefinition:
    """An enabled publisher postback (SPEC "Publisher postbacks (outbound)")."""

    id: int
    publisher_id: int
    offer_id: int | None  # None: all offers
    trigger: str
    event_id: int | None  # None: any event (event trigger only)
    url: str


_POSTBACK_FIELDS = ("id", "publisher_id", "offer_id", "trigger", "event_id", "url")
_NO_EVENTS = OfferEvents(by_id={}, by_name={})
#: What the one-statement path predicts with for an allow-list it has not cached.
_NOBODY = AllowList(nobody=True)

_MONEY_FIELDS = ("revenue_type", "revenue_value", "payout_type", "payout_value")
_OFFER_FIELDS = (
    "id",
    "advertiser_id",
    "advertiser__postback_token",
    "status",
    "destination_url",
    "currency",
    *_MONEY_FIELDS,
    "name",
    "advertiser__allowed_ips",
    "conversion_window_days",
    "min_conversion_seconds",
    "fallback_url",
)
_EVENT_FIELDS = (
    "id",
    "offer_id",
    "name",
    "allow_multiple",
    *_MONEY_FIELDS,
    "wait_for_conversion_minutes",
)
_CAP_FIELDS = ("id", "offer_id", "metric", "period", "limit", "publisher_id", "mode")


class Definitions:
    """The definitions as of one version, loaded lazily with the ORM on first use.

    The version was read by the hit's own statement *before* anything here is loaded, so
    what is loaded is at least that new (READ COMMITTED): a cache is never older than its
    version. Should an edit commit between the two, the next hit reads the newer version
    and starts over.
    """

    def __init__(self, key: tuple[str, int] | None) -> None:
        self.key = key
        self._offers: dict[int, OfferDefinition] = {}
        self._events: dict[int, OfferEvents] = {}
        self._advertisers_by_digest: dict[str, tuple[int, str]] = {}
        self._allow_lists: dict[int, AllowList] = {}
        self._event_offers: dict[int, int] = {}
        # Every enabled publisher postback (None until loaded), and per offer those that
        # apply to it: a network has few, and most offers none.
        self._all_postbacks: tuple[PostbackDefinition, ...] | None = None
        self._postbacks: dict[int, tuple[PostbackDefinition, ...]] = {}
        self._tokens: frozenset[str] | None = None
        self._advertiser_offers: dict[int, tuple[int, ...]] = {}
        # Built whole in memory (``of``): what is not here does not exist, nothing is loaded.
        self._complete = False

    @classmethod
    def of(
        cls, *, offers: Sequence[OfferDefinition], events: Sequence[EventDefinition] = ()
    ) -> "Definitions":
        """Definitions made of these offers and events and nothing else, never loading
        anything (for the rules' tests, which run without a database)."""
        defs = cls(None)
        defs._complete = True
        for offer in offers:
            defs._remember_offer(offer)
            defs._remember_events(offer.id, [e for e in events if e.offer_id == offer.id])
        for advertiser_id in {offer.advertiser_id for offer in offers}:
            defs._advertiser_offers[advertiser_id] = tuple(
                offer.id for offer in offers if offer.advertiser_id == advertiser_id
            )
        return defs

    def _remember_offer(self, offer: OfferDefinition) -> None:
        self._offers[offer.id] = offer
        # Its advertiser's other postbacks (an unknown transaction_id, say) need no query.
        digest = token_digest(offer.postback_token)
        self._advertisers_by_digest[digest] = (offer.advertiser_id, offer.postback_token)
        self._allow_lists[offer.advertiser_id] = offer.allow_list

    def _remember_events(self, offer_id: int, events: list[EventDefinition]) -> OfferEvents:
        found = self._events[offer_id] = OfferEvents(
            by_id={event.id: event for event in events},
            by_name={event.name: event for event in events},
            any_waits=any(event.wait_for_conversion_minutes > 0 for event in events),
        )
        self._event_offers.update((event.id, offer_id) for event in events)
        return found

    @property
    def version(self) -> int | None:
        return self.key[1] if self.key else None

    def offer(self, offer_id: int) -> OfferDefinition | None:
        """The offer (with its advertiser's token), or None if no offer has this ID.

        Offers that do not exist are not remembered: tracking links with made-up offer IDs
        must not grow the cache.
        """
        cached = self._offers.get(offer_id)
        if cached is not None or self._complete:
            return cached
        row = _offers().filter(pk=offer_id).values_list(*_OFFER_FIELDS, "has_caps").first()
        if row is None:
            return None
        *row, has_caps = row
        caps = _caps(OfferCap.objects.filter(offer_id=offer_id)) if has_caps else {}
        offer = _offer(tuple(row), caps.get(offer_id, ()))
        self._remember_offer(offer)
        return offer

    def events(self, offer_id: int) -> OfferEvents:
        """All events of the offer (one query the first time)."""
        cached = self._events.get(offer_id)
        if cached is not None:
            return cached
        if self._complete:
            return OfferEvents(by_id={}, by_name={})
        events = [
            _event(row)
            for row in Event.objects.filter(offer_id=offer_id).values_list(*_EVENT_FIELDS)
        ]
        return self._remember_events(offer_id, events)

    def advertiser_offers(self, advertiser_id: int) -> tuple[int, ...]:
        """The IDs of the advertiser's offers, with every one of them and their events
        loaded (two queries the first time): what a postback that does not name its offer
        may be for (see ``cached_advertiser_offers``)."""
        cached = self._advertiser_offers.get(advertiser_id)
        if cached is not None or self._complete:
            return cached or ()
        caps = _caps(OfferCap.objects.filter(offer__advertiser_id=advertiser_id))
        offers = [
            _offer(row, caps.get(row[0], ()))
            for row in Offer.objects.filter(advertiser_id=advertiser_id)
            .order_by("pk")
            .values_list(*_OFFER_FIELDS)
        ]
        events: dict[int, list[EventDefinition]] = {offer.id: [] for offer in offers}
        rows = Event.objects.filter(offer__advertiser_id=advertiser_id).values_list(*_EVENT_FIELDS)
        for event in map(_event, rows):
            events[event.offer_id].append(event)
        for offer in offers:
            self._remember_offer(offer)
            if offer.id not in self._events:
                self._remember_events(offer.id, events[offer.id])
        found = self._advertiser_offers[advertiser_id] = tuple(offer.id for offer in offers)
        return found

    def publisher_postbacks(self, offer_id: int) -> tuple[PostbackDefinition, ...]:
        """The enabled publisher postbacks that may fire for the offer's records: its own
        and the all-offers ones, of every publisher (tracking/deliveries.py picks the
        winners). All of them are loaded with one query per version; without a version
        (SQLite) only the offer's, each time (serves: publisherpostback_offer)."""
        cached = self.cached_publisher_postbacks(offer_id)
        if cached is not None:
            return cached
        if self._complete:
            return ()
        if self.key is None:
            return self._postbacks.setdefault(
                offer_id, _postbacks(Q(offer_id=offer_id) | Q(offer__isnull=True))
            )
        self._all_postbacks = _postbacks(Q())
        found = self.cached_publisher_postbacks(offer_id)
        assert found is not None
        return found

    # What is cached already, without loading anything (None where nothing is cached):
    # for the tracking path's one-statement attempt, which only tries what it can predict.

    def cached_offer(self, offer_id: int) -> OfferDefinition | None:
        return self._offers.get(offer_id)

    def cached_events(self, offer_id: int) -> OfferEvents | None:
        return self._events.get(offer_id)

    def cached_publisher_postbacks(self, offer_id: int) -> tuple[PostbackDefinition, ...] | None:
        found = self._postbacks.get(offer_id)
        if found is None and self._all_postbacks is not None:
            found = self._postbacks[offer_id] = tuple(
                p for p in self._all_postbacks if p.offer_id in (None, offer_id)
            )
        return found

    def cached_event_offer(self, event_id: int) -> int | None:
        """The offer of the event with this (platform-wide) event ID."""
        return self._event_offers.get(event_id)

    def tokens(self) -> frozenset[str]:
        """Every advertiser's current postback token (one query the first time): what the
        postback log masks wherever it appears (tracking.masking)."""
        if self._tokens is None:
            if self._complete:
                self._tokens = frozenset(offer.postback_token for offer in self._offers.values())
            else:
                tokens = Advertiser.objects.values_list("postback_token", flat=True)
                self._tokens = frozenset(tokens)
        return self._tokens

    def cached_tokens(self) -> frozenset[str] | None:
        """The tokens if ``tokens()`` loaded them already (None otherwise)."""
        return self._tokens

    def cached_advertiser_offers(self, advertiser_id: int) -> tuple[int, ...] | None:
        """The IDs of all the advertiser's offers, where ``advertiser_offers`` loaded them."""
        return self._advertiser_offers.get(advertiser_id)

    def cached_advertiser_for_token(self, token: str) -> int | None:
        """``advertiser_for_token`` for a token already known, else None (no query)."""
        known = self._advertisers_by_digest.get(token_digest(token))
        if known is None or not tokens_match(known[1], token):
            return None
        return known[0]

    def cached_only(self) -> "CachedDefinitions":
        """This cache as the rules read definitions, but where anything would have to be
        loaded it answers "none" instead: what the one-statement path predicts with."""
        return CachedDefinitions(self)

    def advertiser_for_token(self, token: str) -> int | None:
        """The ID of the advertiser whose postback token this is, or None.

        Found by the token's digest (so no query compares the secret itself) and confirmed
        in constant time. Unknown tokens are not remembered (anyone can send any number of
        them); known ones are.
        """
        digest = token_digest(token)
        try:
            advertiser_id, stored = self._advertisers_by_digest[digest]
        except KeyError:
            if self._complete:
                return None
            row = (
                Advertiser.objects.filter(postback_token_digest=digest)
                .values_list("id", "postback_token", "allowed_ips")
                .first()
            )
            if row is None:
                return None
            advertiser_id, stored, allowed_ips = row
            self._advertisers_by_digest[digest] = (advertiser_id, stored)
            self._allow_lists[advertiser_id] = AllowList.of(allowed_ips)
        return advertiser_id if tokens_match(stored, token) else None

    def allow_list(self, advertiser_id: int) -> AllowList:
        """The advertiser's IP allow-list (check 3a). Known wherever its token or one of its
        offers was (both bring it along); otherwise one query."""
        cached = self._allow_lists.get(advertiser_id)
        if cached is not None:
            return cached
        if self._complete:
            return EMPTY
        advertiser = Advertiser.objects.filter(pk=advertiser_id)
        allowed_ips = advertiser.values_list("allowed_ips", flat=True).first()
        found = self._allow_lists[advertiser_id] = AllowList.of(allowed_ips)
        return found

    def cached_allow_list(self, advertiser_id: int) -> AllowList | None:
        return self._allow_lists.get(advertiser_id)


class CachedDefinitions:
    """A ``Definitions`` read without loading: what is not cached is answered as missing.
    Predictions made on it never accept what the full definitions would refuse, since a
    missing offer, event or token only ever makes a check refuse."""

    __slots__ = ("defs",)

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs

    def offer(self, offer_id: int) -> OfferDefinition | None:
        return self.defs.cached_offer(offer_id)

    def events(self, offer_id: int) -> OfferEvents:
        return self.defs.cached_events(offer_id) or _NO_EVENTS

    def advertiser_for_token(self, token: str) -> int | None:
        return self.defs.cached_advertiser_for_token(token)

    def allow_list(self, advertiser_id: int) -> AllowList:
        # Not cached: a list that admits nobody, so the prediction never accepts.
        cached = self.defs.cached_allow_list(advertiser_id)
        return _NOBODY if cached is None else cached


def tokens_match(stored: str, given: str) -> bool:
    """Whether ``given`` is the token ``stored``, compared in constant time."""
    return hmac.compare_digest(stored.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def _money(row: tuple) -> MoneyRules:
    revenue_type, revenue_value, payout_type, payout_value = row
    return MoneyRules(revenue_type, Decimal(revenue_value), payout_type, Decimal(payout_value))


def _offer(row: tuple, caps: tuple[CapDefinition, ...] = ()) -> OfferDefinition:
    (offer_id, advertiser_id, token, status, destination, currency, *rest) = row
    money, (name, allowed_ips, window_days, min_seconds, fallback_url) = rest[:4], rest[4:]
    return OfferDefinition(
        offer_id,
        advertiser_id,
        token,
        status,
        destination,
        currency,
        _money(tuple(money)),
        name=name,
        allow_list=AllowList.of(allowed_ips),
        conversion_window_days=window_days,
        min_conversion_seconds=min_seconds or 0,
        fallback_url=fallback_url or "",
        caps=caps,
    )


def _postbacks(condition: Q) -> tuple[PostbackDefinition, ...]:
    rows = (
        PublisherPostback.objects.filter(condition, enabled=True)
        .order_by("id")
        .values_list(*_POSTBACK_FIELDS)
    )
    return tuple(PostbackDefinition(*row) for row in rows)


def _offers() -> QuerySet[Offer]:
    """Offers, with whether each has caps: most have none, and need no query for them."""
    return Offer.objects.annotate(has_caps=Exists(OfferCap.objects.filter(offer=OuterRef("pk"))))


def _caps(caps: QuerySet[OfferCap]) -> dict[int, tuple[CapDefinition, ...]]:
    """The caps of the offers in ``caps``, by offer ID."""
    found: dict[int, list[CapDefinition]] = {}
    for cap_id, offer_id, metric, period, limit, publisher_id, mode in caps.order_by(
        "pk"
    ).values_list(*_CAP_FIELDS):
        found.setdefault(offer_id, []).append(
            CapDefinition(cap_id, metric, period, Decimal(limit), publisher_id, mode)
        )
    return {offer_id: tuple(offer_caps) for offer_id, offer_caps in found.items()}


def _event(row: tuple) -> EventDefinition:
    event_id, offer_id, name, allow_multiple, *rest = row
    money, (wait_minutes,) = rest[:4], rest[4:]
    return EventDefinition(
        event_id,
        offer_id,
        name,
        bool(allow_multiple),
        _money(tuple(money)),
        wait_for_conversion_minutes=wait_minutes or 0,
    )


_current: Definitions | None = None


def definitions(*, version: int | None) -> Definitions:
    """The process's cache of the definitions at ``version`` (read by the caller's own
    statement). A new version starts an empty cache; ``None`` (SQLite) a private one."""
    global _current
    if version is None:
        return Definitions(None)
    key = (database_name(), version)
    current = _current
    if current is None or current.key != key:
        current = _current = Definitions(key)
    return current


def cached_definitions() -> Definitions | None:
    """The process's cache as it stands, whatever its version (None before the first hit)."""
    current = _current
    if current is None or current.key is None:
        return None
    return current if current.key[0] == database_name() else None


def database_name() -> str:
    """The default database's name, read from the connection handler's settings (the same
    dict as ``connection.settings_dict``, which the test runner renames in place): every
    ``connection.x`` goes through a context-local lookup, which the tracking path, asking
    this several times a postback, notices."""
    return connections.settings[DEFAULT_DB_ALIAS]["NAME"]


def current_version() -> int | None:
    """The definitions version now, read on its own (for hits that have no statement of
    their own to carry it). None where there is no version (SQLite)."""
    if connection.vendor not in VERSION_SQL:
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {version_sql()}")  # noqa: S608 - a constant expression
        return cursor.fetchone()[0]
