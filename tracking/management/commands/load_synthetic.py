"""Load millions of synthetic clicks, conversions, event records and postback log rows fast.

Rows are streamed into PostgreSQL with ``COPY`` (psycopg 3 ``cursor.copy``), several times
faster than ``bulk_create``. The generated data is valid by construction (every reference
exists, money follows the event's rule, single-fire events fire once per click), so on an
empty table the secondary indexes are dropped during the load and rebuilt afterwards from
their own definitions: building an index once is much cheaper than updating it per row.
"""

import random
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from offers.models import Event, MoneyType, Offer, Publisher
from offers.money import earned
from offers.services import advertiser_create, event_create
from tracking.models import Click, Conversion, EventRecord, PostbackLog, Reason
from tracking.partitions import ensure_partitions

CHUNK = 50_000
NULL = "\\N"  # COPY's text format for NULL
REJECTIONS = [
    (Reason.UNKNOWN_TRANSACTION, 404),
    (Reason.UNKNOWN_EVENT, 404),
    (Reason.NO_CONVERSION, 422),
    (Reason.DUPLICATE_CONVERSION, 409),
    (Reason.DUPLICATE_EVENT, 409),
    (Reason.INVALID_SECURE, 403),
    (Reason.AMOUNT_REQUIRED, 422),
    (Reason.MISSING_PARAMETER, 400),
]
# (name, revenue rule, payout rule, allow multiple) of each synthetic offer's events.
EVENTS = [
    ("registration", (MoneyType.CPA, Decimal("1.50")), (MoneyType.CPA, Decimal("1.00")), False),
    ("first_deposit", (MoneyType.CPA, Decimal("20.00")), (MoneyType.CPA, Decimal("12.00")), False),
    ("purchase", (MoneyType.CPS, Decimal("10")), (MoneyType.CPS, Decimal("6")), True),
]


def _ts(value: datetime) -> str:
    return value.isoformat()


class Command(BaseCommand):
    help = (
        "Load synthetic traffic with COPY (PostgreSQL only): "
        "--event-records N event records spread over --days days."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--event-records", type=int, default=1_000_000)
        parser.add_argument(
            "--events-per-conversion",
            type=int,
            default=5,
            help="event records per conversion (clicks = conversions = records / this)",
        )
        parser.add_argument("--postbacks", type=int, default=1_000_000, help="log rows")
        parser.add_argument("--offers", type=int, default=20)
        parser.add_argument("--publishers", type=int, default=50)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=11)

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("load_synthetic uses COPY and needs PostgreSQL (DATABASE_URL).")
        rng = random.Random(options["seed"])  # noqa: S311 - synthetic data, not security
        n_records = options["event_records"]
        n_conversions = max(1, n_records // max(1, options["events_per_conversion"]))
        end = timezone.now().replace(microsecond=0)
        start = end - timedelta(days=options["days"])
        started = time.monotonic()

        offers, publishers = self._definitions(options["offers"], options["publishers"])
        events = {o.pk: list(o.events.order_by("id")) for o in offers}
        # The log's rows go to their months' partitions, not the DEFAULT one.
        ensure_partitions(now=start, months_ahead=(end - start).days // 28 + 1)
        with transaction.atomic():
            self._skip_reference_checks()
            dropped = self._drop_secondary_indexes()
            ids = self._next_ids()
            clicks = self._load_clicks_and_conversions(
                rng, ids, n_conversions, offers, publishers, start, end
            )
            self._load_event_records(rng, ids, n_records, clicks, events, end)
            self._load_postbacks(rng, ids, options["postbacks"], n_records, clicks, start, end)
            self._rebuild_indexes(dropped)
            self._reset_sequences()
            self._rebuild_hourly_totals()
        with connection.cursor() as cursor:
            for model in (Click, Conversion, EventRecord, PostbackLog):
                # VACUUM sets the visibility map, which index-only scans need (autovacuum would
                # do it later on a live system).
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
            cursor.execute("VACUUM ANALYZE tracking_hourlytotal")
        elapsed = time.monotonic() - started
        total = 2 * n_conversions + n_records + options["postbacks"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {n_conversions} clicks, {n_conversions} conversions, {n_records} event "
                f"records and {options['postbacks']} postback log rows in {elapsed:.0f} s "
                f"({total / elapsed:,.0f} rows/s)."
            )
        )

    def _definitions(self, n_offers: int, n_publishers: int) -> tuple[list[Offer], list[int]]:
        tag = f"{timezone.now():%Y%m%d%H%M%S}"
        advertisers = [advertiser_create(name=f"Synthetic advertiser {i} {tag}") for i in range(4)]
        publishers = [
            Publisher.objects.create(name=f"Synthetic publisher {i} {tag}").pk
            for i in range(n_publishers)
        ]
        offers = []
        for i in range(n_offers):
            offer = Offer.objects.create(
                name=f"Synthetic offer {i} {tag}",
                advertiser=advertisers[i % len(advertisers)],
                destination_url="https://example.com/?click={transaction_id}",
                currency=["USD", "EUR", "GBP"][i % 3],
                revenue_value=Decimal("3.00"),
                payout_value=Decimal("2.00"),
            )
            for name, revenue, payout, multiple in EVENTS:
                event_create(
                    offer=offer,
                    name=name,
                    revenue_type=revenue[0],
                    revenue_value=revenue[1],
                    payout_type=payout[0],
                    payout_value=payout[1],
                    allow_multiple=multiple,
                )
            offers.append(offer)
        return offers, publishers

    def _skip_reference_checks(self) -> None:
        """Skip foreign-key checks for this load when the role may: every reference is valid
        by construction, and checking five references per row would triple the load time.
        Otherwise the deferred checks run (all at once) before the indexes are rebuilt."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")
            else:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def _drop_secondary_indexes(self) -> list[str]:
        """Drop the indexes that back no constraint on the empty hit tables; return their SQL."""
        tables = [m._meta.db_table for m in (Click, Conversion, EventRecord, PostbackLog)]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM (SELECT 1 FROM tracking_eventrecord LIMIT 1) AS any_row"
            )
            if cursor.fetchone()[0]:
                return []  # a table already holds rows: keep its indexes, insert through them
            cursor.execute(
                """
                SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                FROM pg_index i
                LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
                JOIN pg_class t ON t.oid = i.indrelid
                -- Not a partitioned table's (the postback log's, tracking/partitions.py): its
                -- partitions carry their own named copies, which a rebuild would not make.
                WHERE i.indrelid::regclass::text = ANY(%s) AND c.oid IS NULL AND t.relkind = 'r'
                """,
                [tables],
            )
            rows = cursor.fetchall()
            for name, _ in rows:
                cursor.execute(f'DROP INDEX "{name}"')
        return [definition for _, definition in rows]

    def _rebuild_indexes(self, definitions: list[str]) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            for definition in definitions:
                self.stdout.write(f"  {definition[:100]}")
                cursor.execute(definition)

    def _rebuild_hourly_totals(self) -> None:
        """Recompute the report totals (migration 0004_reports) from the records: the load
        skipped the triggers that keep them (session_replication_role = replica)."""
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(REBUILD_HOURLY_TOTALS)
        self.stdout.write(f"  hourly totals rebuilt in {time.monotonic() - started:.1f} s")

    def _next_ids(self) -> dict[str, int]:
        with connection.cursor() as cursor:
            ids = {}
            for model in (Click, Conversion, EventRecord, PostbackLog):
                sql = f"SELECT coalesce(max(id), 0) + 1 FROM {model._meta.db_table}"  # noqa: S608
                cursor.execute(sql)
                ids[model._meta.model_name] = cursor.fetchone()[0]
        return ids

    def _reset_sequences(self) -> None:
        with connection.cursor() as cursor:
            for model in (Click, Conversion, EventRecord, PostbackLog):
                table = model._meta.db_table
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"coalesce((SELECT max(id) FROM {table}), 1))"
                )

    def _copy(self, model: type, columns: list[str], rows_text: Any, label: str) -> None:
        """COPY ``rows_text`` (an iterable of tab-separated chunks) into ``model``'s table."""
        started = time.monotonic()
        count = 0
        sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for chunk, n in rows_text:
                copy.write(chunk)
                count += n
        elapsed = time.monotonic() - started
        self.stdout.write(f"  {label}: {count} rows in {elapsed:.1f} s ({count / elapsed:,.0f}/s)")

    def _load_clicks_and_conversions(
        self,
        rng: random.Random,
        ids: dict[str, int],
        n: int,
        offers: list[Offer],
        publishers: list[int],
        start: datetime,
        end: datetime,
    ) -> list[tuple[int, int, int, int, datetime, str]]:
        """One conversion per click, both in time order as a live table would hold them.

        Returns (click id, conversion id, offer id, publisher id, converted at, currency).
        """
        span = (end - start).total_seconds() - 3 * 86_400  # leave room for later events
        # Offers of equal size, so "a 30-day report for one offer" means the same for each.
        picks = rng.choices(offers, k=n)
        times = sorted(rng.random() * span for _ in range(n))
        clicks = []
        click_rows, conversion_rows = [], []

        def flush(rows: list[str]) -> tuple[str, int]:
            text = "".join(rows)
            size = len(rows)
            rows.clear()
            return text, size

        def click_chunks():  # noqa: ANN202
            for i in range(n):
                offer = picks[i]
                publisher = publishers[int(rng.random() ** 2 * len(publishers))]
                at = start + timedelta(seconds=times[i])
                txid = f"syn{ids['click'] + i:013d}{rng.getrandbits(64):016x}"
                currency = offer.currency if rng.random() > 0.05 else "CAD"
                clicks.append(
                    (
                        ids["click"] + i,
                        ids["conversion"] + i,
                        offer.pk,
                        publisher,
                        at + timedelta(minutes=5),
                        currency,
                    )
                )
                click_rows.append(
                    f"{ids['click'] + i}\t{txid}\t{offer.pk}\t{publisher}\t\t\t\t\t\t\t"
                    f"198.51.100.{i % 250 + 1}\tsynthetic\t\tf\t{_ts(at)}\n"
                )
                if len(click_rows) >= CHUNK:
                    yield flush(click_rows)
            if click_rows:
                yield flush(click_rows)

        self._copy(
            Click,
            [
                "id",
                "transaction_id",
                "offer_id",
                "publisher_id",
                "aff_sub",
                "aff_sub2",
                "aff_sub3",
                "aff_sub4",
                "aff_sub5",
                "source",
                "ip",
                "user_agent",
                "referrer",
                "is_test",
                "created_at",
            ],
            click_chunks(),
            "clicks",
        )

        def conversion_chunks():  # noqa: ANN202
            for click_id, conversion_id, offer_id, publisher, at, currency in clicks:
                conversion_rows.append(
                    f"{conversion_id}\t{click_id}\t{offer_id}\t{publisher}\t3.00\t2.00\t"
                    f"{currency}\t\\N\tC{conversion_id}\t\t\t\t\t{_ts(at)}\n"
                )
                if len(conversion_rows) >= CHUNK:
                    yield flush(conversion_rows)
            if conversion_rows:
                yield flush(conversion_rows)

        self._copy(Conversion, [*MONEY_COLUMNS], conversion_chunks(), "conversions")
        return clicks

    def _load_event_records(
        self,
        rng: random.Random,
        ids: dict[str, int],
        n: int,
        clicks: list[tuple[int, int, int, int, datetime, str]],
        events: dict[int, list[Event]],
        end: datetime,
    ) -> None:
        """``n`` records over the conversions in order: the table stays in time order."""
        n_conversions = len(clicks)
        # Amounts are drawn from a small set so the money of CPS rules is computed once each.
        amounts = [Decimal(cents) / 100 for cents in range(500, 20_000, 137)]
        money: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}
        for offer_events in events.values():
            for event in offer_events:
                for a, amount in enumerate(amounts):
                    money[(event.pk, a)] = (
                        earned(
                            money_type=event.revenue_type, value=event.revenue_value, amount=amount
                        ),
                        earned(
                            money_type=event.payout_type, value=event.payout_value, amount=amount
                        ),
                    )

        def chunks():  # noqa: ANN202
            rows = []
            previous, nth = -1, 0
            for k in range(n):
                c = k * n_conversions // n
                nth = nth + 1 if c == previous else 0
                previous = c
                click_id, conversion_id, offer_id, publisher, at, currency = clicks[c]
                offer_events = events[offer_id]
                event = offer_events[min(nth, len(offer_events) - 1)]
                a = rng.randrange(len(amounts))
                revenue, payout = money[(event.pk, a)]
                multiple = event.allow_multiple
                is_cps = MoneyType.CPS in (event.revenue_type, event.payout_type)
                when = min(at + timedelta(minutes=30 * (nth + 1)), end)
                rows.append(
                    f"{ids['eventrecord'] + k}\t{click_id}\t{offer_id}\t{publisher}\t{revenue}\t"
                    f"{payout}\t{currency}\t{amounts[a] if is_cps else NULL}\t"
                    f"{f'O{k}' if multiple else ''}\t\t\t\t\t{_ts(when)}\t{event.pk}\t"
                    f"{conversion_id}\t{'t' if multiple else 'f'}\n"
                )
                if len(rows) >= CHUNK:
                    yield "".join(rows), len(rows)
                    rows = []
            if rows:
                yield "".join(rows), len(rows)

        self._copy(
            EventRecord,
            [*MONEY_COLUMNS, "event_id", "conversion_id", "allow_multiple"],
            chunks(),
            "event records",
        )

    def _load_postbacks(
        self,
        rng: random.Random,
        ids: dict[str, int],
        n: int,
        n_records: int,
        clicks: list[tuple[int, int, int, int, datetime, str]],
        start: datetime,
        end: datetime,
    ) -> None:
        """``n`` log rows in time order: 85 % accepted (linked to a record), the rest rejected."""
        span = (end - start).total_seconds()
        times = sorted(rng.random() * span for _ in range(n))

        def chunks():  # noqa: ANN202
            rows = []
            for k in range(n):
                click_id, conversion_id, offer_id, _, _, _ = clicks[rng.randrange(len(clicks))]
                at = _ts(start + timedelta(seconds=times[k]))
                if rng.random() < 0.85 and n_records:
                    record = ids["eventrecord"] + rng.randrange(n_records)
                    reason, status, kind, link = "accepted", 200, "event", f"{NULL}\t{record}"
                else:
                    reason, status = rng.choice(REJECTIONS)
                    kind, link = "event", f"{NULL}\t{NULL}"
                rows.append(
                    f"{ids['postbacklog'] + k}\t{at}\tGET\t{{}}\tsyn…\t203.0.113.10\tpartner/1.0\t"
                    f"{status}\t{reason}\t\t{kind}\tsyn{click_id}\t\\N\t{offer_id}\t\\N\t"
                    f"{click_id}\t{link}\n"
                )
                if len(rows) >= CHUNK:
                    yield "".join(rows), len(rows)
                    rows = []
            if rows:
                yield "".join(rows), len(rows)

        self._copy(
            PostbackLog,
            [
                "id",
                "created_at",
                "method",
                "params",
                "secure_masked",
                "ip",
                "user_agent",
                "status_code",
                "reason",
                "message",
                "type",
                "transaction_id",
                "advertiser_id",
                "offer_id",
                "event_id",
                "click_id",
                "conversion_id",
                "event_record_id",
            ],
            chunks(),
            "postback log",
        )


# As in tracking/migrations/0004_reports.py (4 shards by record id).
REBUILD_HOURLY_TOTALS = """
DELETE FROM tracking_hourlytotal;
INSERT INTO tracking_hourlytotal
    (offer_id, hour, event_id, currency, shard, count, revenue, payout)
SELECT offer_id, date_trunc('hour', created_at, 'UTC'), 0, currency, id % 4,
       count(*), sum(revenue), sum(payout)
FROM tracking_conversion GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT offer_id, date_trunc('hour', created_at, 'UTC'), event_id, currency, id % 4,
       count(*), sum(revenue), sum(payout)
FROM tracking_eventrecord GROUP BY 1, 2, 3, 4, 5
"""

MONEY_COLUMNS = [
    "id",
    "click_id",
    "offer_id",
    "publisher_id",
    "revenue",
    "payout",
    "currency",
    "amount",
    "adv_sub",
    "adv_sub2",
    "adv_sub3",
    "adv_sub4",
    "adv_sub5",
    "created_at",
]
