"""``make bench``: the tracking path under load, in the production configuration.

Starts gunicorn with ``config/gunicorn.py`` (or, with ``--plain-gunicorn``, as people often
start it: ``gunicorn config.wsgi -w 4``, no config file) and production settings
(``DEBUG=False``) on a PostgreSQL database holding at least ``--clicks`` clicks (1M by
default, loaded once with COPY and reused), drives it with ``wrk`` (installed from Debian's
packages when missing) at ``/healthz``, ``/click``, accepted postbacks in each URL form
(docs/postbacks.md "The URLs": the generated event URL, ``event_id`` only, the global URL
with ``event_name`` only, the offer URL's conversion, the global URL's conversion), the
status postback (an advertiser rejecting a conversion, docs/postbacks.md "Approving and
rejecting") and rejected postbacks, and prints req/s, p50 and p99 of each, with its ratio
to ``/healthz`` measured in the same run. After each postback run it checks the database:
exactly as many records (status changes, for the status postback) as ``200`` answers.
Results go to ``bench/results/`` and, with ``--write-docs``, into docs/benchmarks.md
between its ``postbacks`` markers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.docs import write_between_markers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "lua" / "pool.lua"
# Converted clicks without an event record kept ready for the event runs (each accepted
# event uses one up), topped up before every run.
CONVERTED = 100_000
# PostgreSQL's Unix socket where Debian puts it (libpq's default directory here).
SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
MARK_START, MARK_END = "<!-- postbacks:start -->", "<!-- postbacks:end -->"
#: The accepted postbacks measured, one run each: every URL form (docs/postbacks.md).
EVENT_FORMS = {
    "event": "accepted event, generated event URL (offer_id, event_id, event_name; CPS)",
    "event-id": "accepted event, event_id only (CPS)",
    "event-name": "accepted event, global URL with event_name only (CPS)",
}
CONVERSION_FORMS = {
    "conversion": "accepted conversion, offer URL (offer_id)",
    "conversion-global": "accepted conversion, global URL",
}
#: The status postback: each request rejects an approved conversion that no event run uses
#: (``updated``: the change, its history row and its log row in one transaction).
STATUS_FORMS = {"status": "status postback: reject a conversion (updated)"}


@dataclass
class Result:
    name: str
    path: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    ratio_to_healthz: float = 0.0
    check: str = ""
    per_round: list[float] = field(default_factory=list)
    #: The disk's flush timed just before each round's run (p50 and p99, µs): ``Flush``.
    flush_per_round: list[tuple[float, float]] = field(default_factory=list)


def add_server_arguments(
    parser: argparse.ArgumentParser, *, port: int, database: str = "clicktrail_bench_postbacks"
) -> None:
    """The server's and wrk's arguments, shared with ``make bench-compare`` and
    ``make bench-retention``."""
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--database", default=database)
    parser.add_argument(
        "--db-over",
        choices=("socket", "tcp"),
        default="socket" if Path(SOCKET).exists() else "tcp",
        help="how the server reaches PostgreSQL on this machine: its Unix socket (the "
        "default when it exists, as a one-box deployment would) or TCP on 127.0.0.1:5432",
    )
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=1_000_000, help="clicks in the database")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of every scenario; medians are reported (the machine is noisy)",
    )
    parser.add_argument(
        "--healthz-duration",
        type=int,
        default=5,
        help="seconds of each /healthz run (one before and after every other path)",
    )
    add_server_arguments(parser, port=8099)
    parser.add_argument(
        "--plain-gunicorn",
        action="store_true",
        help="serve with plain `gunicorn config.wsgi -w 4` (--workers to change 4): no "
        "config file, gunicorn's own defaults",
    )
    parser.add_argument(
        "--publisher-postbacks",
        action="store_true",
        help="give the bench publisher a conversion and an event postback on every bench "
        "offer, so every accepted postback also writes its delivery (docs/publisher-postbacks.md)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument(
        "--rules",
        action="store_true",
        help="the offer rules on the benched offers: two caps each (conversions per day, "
        "hard; payout per month, soft; limits never reached) and an IP allow-list on the "
        "advertiser that admits the bench's address (without it, none of them)",
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    return parser.parse_args()


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("wrk is missing; installing Debian's wrk package", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or sys.exit("could not install wrk")


def server_env(database: str, over: str = "tcp") -> dict[str, str]:
    """The environment of a production-style server on the bench database ``database``, over
    TCP or over the Unix socket (an empty host: libpq's default socket directory)."""
    host = "" if over == "socket" else "127.0.0.1:5432"
    return {
        "DATABASE_URL": f"postgres://postgres@{host}/{database}",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "TRACKING_BASE_URL": "http://127.0.0.1",
    }


def setup_django(database: str, over: str = "tcp") -> dict[str, str]:
    """Point this process (and the server it starts) at the bench database, production-style:
    over TCP, or over the Unix socket (an empty host: libpq's default socket directory)."""
    env = server_env(database, over)
    os.environ.update(env)
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            c.execute(f'CREATE DATABASE "{database}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def set_rules(offers: list, advertiser: object, *, on: bool) -> None:  # noqa: ANN001
    """With ``on``, two caps per offer and an allow-list admitting 127.0.0.1 (and ::1);
    without, none (docs/postbacks.md "Offer rules")."""
    from decimal import Decimal

    from offers.models import OfferCap
    from offers.services import offer_caps_replace

    caps = [
        {
            "metric": OfferCap.Metric.CONVERSIONS,
            "period": OfferCap.Period.DAY,
            "limit": Decimal("1000000000"),
            "publisher": None,
            "mode": OfferCap.Mode.HARD,
        },
        {
            "metric": OfferCap.Metric.PAYOUT,
            "period": OfferCap.Period.MONTH,
            "limit": Decimal("999999999999"),
            "publisher": None,
            "mode": OfferCap.Mode.SOFT,
        },
    ]
    for offer in offers:
        offer_caps_replace(offer=offer, caps=caps if on else [])
    advertiser.allowed_ips = ["127.0.0.1/32", "::1/128", "10.0.0.0/8"] if on else []
    advertiser.save(update_fields=["allowed_ips", "updated_at"])
    print(f"offer rules: {'two caps per offer and an allow-list' if on else 'none'}", flush=True)


def prepare(
    clicks: int, converted: int = CONVERTED, *, rules: bool = False, fresh: int = 0
) -> dict[str, object]:
    """Definitions, ``clicks`` clicks (COPY), at least ``converted`` converted clicks without
    an event record, and at least ``fresh`` clicks without a conversion (more clicks are
    loaded where runs have used them up)."""
    from decimal import Decimal

    from django.db import connection

    from offers.models import Advertiser, Event, Offer, Publisher
    from offers.services import advertiser_create, event_create

    advertiser = Advertiser.objects.filter(name="Bench advertiser").first()
    if advertiser is None:
        advertiser = advertiser_create(name="Bench advertiser")
    publisher, _ = Publisher.objects.get_or_create(name="Bench publisher")
    offer, _ = Offer.objects.get_or_create(
        name="Bench offer",
        advertiser=advertiser,
        defaults={
            "destination_url": "https://shop.example.com/?t={transaction_id}&p={aff_id}",
            "revenue_value": Decimal("2.00"),
            "payout_value": Decimal("1.00"),
            # The loaded clicks are dated 2026-01-01: no conversion window.
            "conversion_window_days": None,
        },
    )
    purchase = Event.objects.filter(offer=offer, name="purchase").first() or event_create(
        offer=offer,
        name="purchase",
        revenue_type="CPS",
        revenue_value=Decimal("10"),
        payout_type="CPS",
        payout_value=Decimal("5"),
    )
    # A second offer of the advertiser with an event of the same name: a postback on the
    # global URL with only event_name then names an event of two offers, and the click's
    # offer decides (docs/postbacks.md, "For developers").
    other, _ = Offer.objects.get_or_create(
        name="Bench offer 2",
        advertiser=advertiser,
        defaults={
            "destination_url": "https://shop.example.com/",
            "payout_value": Decimal("1"),
            "conversion_window_days": None,
        },
    )
    Offer.objects.filter(pk__in=[offer.pk, other.pk]).update(conversion_window_days=None)
    set_rules([offer, other], advertiser, on=rules)
    if not Event.objects.filter(offer=other, name="purchase").exists():
        event_create(
            offer=other,
            name="purchase",
            revenue_type="CPA",
            revenue_value=Decimal("1"),
            payout_type="CPA",
            payout_value=Decimal("0.50"),
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracking_click")
        have = cursor.fetchone()[0]
        if have < clicks:
            load_clicks(clicks - have, offer_id=offer.pk, publisher_id=publisher.pk)
        # Converted clicks for the event and duplicate runs. Small statements: each
        # conversion also updates its hourly-totals row (a trigger), and many updates of
        # one row inside one statement make an ever longer version chain.
        # (Not rejected: an earlier bench's status runs rejected some, and an event on a
        # rejected conversion is refused.)
        cursor.execute(
            "SELECT count(*) FROM tracking_conversion v WHERE v.status <> 'rejected' AND NOT "
            "EXISTS (SELECT 1 FROM tracking_eventrecord r WHERE r.click_id = v.click_id)"
        )
        missing = converted - cursor.fetchone()[0]
        while missing > 0:
            cursor.execute(
                """
                INSERT INTO tracking_conversion
                    (click_id, offer_id, publisher_id, revenue, payout, currency, adv_sub,
                     adv_sub2, adv_sub3, adv_sub4, adv_sub5, created_at, status, status_reason,
                     status_changed_at)
                SELECT c.id, c.offer_id, c.publisher_id, 2.00, 1.00, 'USD', '', '', '', '', '',
                       now(), 'approved', '', now()
                FROM tracking_click c
                WHERE NOT EXISTS (SELECT 1 FROM tracking_conversion v WHERE v.click_id = c.id)
                LIMIT %s
                """,
                [min(missing, 2_000)],
            )
            missing -= 2_000
        # Unconverted clicks for the conversion runs: each accepted conversion uses one up
        # for good, so a database that earlier runs have used gets more. (Without them a run
        # would send duplicates, measure 409s and still find one row per answer.)
        cursor.execute(
            "SELECT count(*) FROM tracking_click c "
            "WHERE NOT EXISTS (SELECT 1 FROM tracking_conversion v WHERE v.click_id = c.id)"
        )
        unconverted = cursor.fetchone()[0]
        if unconverted < fresh:
            load_clicks(fresh - unconverted, offer_id=offer.pk, publisher_id=publisher.pk)
        # Every run starts from the same state: earlier runs' dead row versions (the hourly
        # totals' rows are updated once per accepted record) vacuumed, statistics fresh,
        # and the pages this setup wrote (1M clicks are ~240 MB of table and indexes) flushed, so
        # that the checkpoint they call for does not fall inside a measured run.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    return {"advertiser": advertiser, "publisher": publisher, "offer": offer, "purchase": purchase}


def load_clicks(
    count: int,
    *,
    offer_id: int,
    publisher_id: int,
    aff_sub: str = "bench",
    created_at: Callable[[int], object] = lambda n: "2026-01-01T00:00:00Z",
) -> None:
    """``count`` new clicks of the offer and publisher, with COPY; the ``n``-th made at
    ``created_at(n)``."""
    from django.db import connection

    from tracking.services import generate_transaction_id

    print(f"Loading {count:,} clicks with COPY …", flush=True)
    started = time.monotonic()
    columns = (
        "transaction_id, offer_id, publisher_id, aff_sub, aff_sub2, aff_sub3, "
        "aff_sub4, aff_sub5, source, user_agent, referrer, is_test, created_at"
    )
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY tracking_click ({columns}) FROM STDIN") as copy,
    ):
        for n in range(count):
            copy.write_row(
                (
                    generate_transaction_id(),
                    offer_id,
                    publisher_id,
                    aff_sub,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "wrk",
                    "",
                    False,
                    created_at(n),
                )
            )
            if n and n % 250_000 == 0:
                print(f"  {n:,}", flush=True)
    print(f"  done in {time.monotonic() - started:.0f}s", flush=True)


def settle() -> None:
    """What autovacuum would have done by now in production, done between runs: the tables
    the runs write vacuumed (the hourly totals' rows take an update per accepted record) and
    their statistics refreshed.

    The PostgreSQL of these machines runs with ``autovacuum = off`` (its conf.d/90-ci.conf).
    Without this, the event records table keeps the statistics of the empty table the
    setup analyzed, and the planner reads the whole table for every event's duplicate
    probe instead of its click's index entries until it has grown past ~60,000 rows:
    measured in session 17, 33,700 sequential scans reading 567M rows in two rounds, events
    falling from 857 to 381 req/s run after run while conversions held 1,100."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "tracking_eventrecord",
            "tracking_conversion",
            "tracking_click",
            "tracking_hourlytotal",
            "tracking_postbacklog",
            "tracking_delivery",
            "tracking_statuschange",
            "offers_capcounter",
        ):
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
            if cursor.fetchone()[0]:  # (an older commit's schema, benched for comparison)
                cursor.execute(f"VACUUM ANALYZE {table}")


@dataclass(frozen=True)
class Flush:
    """What a durable commit waits for on this machine, right now: an 8 kB write and
    ``fdatasync`` (PostgreSQL's default ``wal_sync_method``), timed ``samples`` times in a
    file beside PostgreSQL's data directory, i.e. on the disk its WAL is on. It is the cost
    of an accepted postback that no other path pays, and the part of these machines that
    moves most between machines and minutes (docs/benchmarks.md)."""

    p50_us: float
    p99_us: float

    def __str__(self) -> str:
        return f"p50 {self.p50_us:,.0f} µs, p99 {self.p99_us:,.0f} µs"


def publisher_postbacks(defs: dict[str, object], *, enabled: bool) -> None:
    """With ``enabled``, a conversion and an event publisher postback on each of the bench
    advertiser's offers for the bench publisher (no worker runs: deliveries stay queued);
    without, none. Earlier deliveries are deleted either way."""
    from offers.models import Offer, PublisherPostback
    from tracking.models import Delivery, DeliveryAttempt

    DeliveryAttempt.objects.all().delete()
    Delivery.objects.all().delete()
    PublisherPostback.objects.filter(publisher=defs["publisher"]).delete()
    if enabled:
        url = "https://publisher.example/pb?click={aff_sub}&payout={payout}&id={delivery_id}"
        for offer in Offer.objects.filter(advertiser=defs["advertiser"]):
            for trigger in ("conversion", "event"):
                PublisherPostback.objects.create(
                    publisher=defs["publisher"], offer=offer, trigger=trigger, url=url
                )


def flush_directory() -> tuple[Path, str]:
    """Where to time the disk's flush, and how to say where."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data_directory = Path(cursor.fetchone()[0])
    if os.access(data_directory.parent, os.W_OK):
        return data_directory.parent, f"beside {data_directory}"
    return RESULTS, "in bench/results (PostgreSQL's disk is not writable here)"


def flush_latency(directory: Path, samples: int = 500) -> Flush:
    """Time the disk's flush in ``directory`` (see ``Flush``)."""
    block = os.urandom(8192)
    times = []
    with tempfile.TemporaryFile(dir=directory) as file:
        for _ in range(samples):
            started = time.perf_counter()
            os.pwrite(file.fileno(), block, 0)
            os.fdatasync(file.fileno())
            times.append(time.perf_counter() - started)
    cuts = statistics.quantiles(times, n=100)
    return Flush(cuts[49] * 1e6, cuts[98] * 1e6)


def pool(sql: str, size: int) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, [size])
        return [row[0] for row in cursor.fetchall()]


def write_paths(name: str, paths: list[str], rounds: int = 1) -> list[Path]:
    """One file of paths per round, each a disjoint share (postbacks are used up)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    share = max(1, len(paths) // rounds)
    files = []
    for n in range(rounds):
        target = RESULTS / f"{name}-{n}.paths"
        chunk = paths[n * share : (n + 1) * share] if len(paths) > 1 else paths
        target.write_text("\n".join(chunk) + "\n")
        files.append(target)
    return files


def scenarios(
    defs: dict[str, object], size: int, rounds: int = 1
) -> list[tuple[str, str, list[Path], str]]:
    """(name, description, a file of paths per round, what to check afterwards) for each
    scenario; ``size`` paths per round."""
    from tracking.services import generate_transaction_id

    token = defs["advertiser"].postback_token
    offer, publisher, purchase = defs["offer"], defs["publisher"], defs["purchase"]
    total = size * rounds
    # Postbacks are used up: each form of a kind gets its own share of the clicks.
    fresh = pool(
        """SELECT c.transaction_id FROM tracking_click c
           WHERE NOT EXISTS (SELECT 1 FROM tracking_conversion v WHERE v.click_id = c.id)
           LIMIT %s""",
        total * len(CONVERSION_FORMS),
    )
    converted_without_event = pool(
        f"""SELECT c.transaction_id FROM tracking_click c
            JOIN tracking_conversion v ON v.click_id = c.id
            WHERE v.status <> 'rejected'
              AND NOT EXISTS (SELECT 1 FROM tracking_eventrecord r
                              WHERE r.click_id = c.id AND r.event_id = {purchase.pk})
            LIMIT %s""",
        total * len(EVENT_FORMS),
    )
    # The status run rejects conversions: never those the event runs will use.
    taken = set(converted_without_event)
    approved = [
        t
        for t in pool(
            "SELECT c.transaction_id FROM tracking_click c "
            "JOIN tracking_conversion v ON v.click_id = c.id WHERE v.status = 'approved' "
            "LIMIT %s",
            total + len(taken),
        )
        if t not in taken
    ][:total]
    converted = pool(
        "SELECT c.transaction_id FROM tracking_click c "
        "JOIN tracking_conversion v ON v.click_id = c.id LIMIT %s",
        total,
    )
    base = f"/postback?secure={token}&transaction_id="
    event_forms = {
        "event": f"&offer_id={offer.pk}&event_id={purchase.pk}&event_name=purchase",
        "event-id": f"&event_id={purchase.pk}",
        "event-name": "&event_name=purchase",
    }
    conversion_forms = {"conversion": f"&offer_id={offer.pk}", "conversion-global": ""}
    runs = [
        (
            "healthz",
            "GET /healthz (health check + SELECT 1)",
            write_paths("healthz", ["/healthz"], rounds),
            "",
        ),
        (
            "click",
            "GET /click → 302",
            write_paths(
                "click", [f"/click?offer_id={offer.pk}&aff_id={publisher.pk}&aff_sub=wrk"], rounds
            ),
            "clicks",
        ),
    ]
    for n, (name, description) in enumerate(EVENT_FORMS.items()):
        share = converted_without_event[n :: len(EVENT_FORMS)]
        paths = [
            f"{base}{t}{event_forms[name]}&amount=19.99&adv_sub=o{k}" for k, t in enumerate(share)
        ]
        runs.append((name, description, write_paths(name, paths, rounds), "eventrecords"))
    for n, (name, description) in enumerate(CONVERSION_FORMS.items()):
        paths = [f"{base}{t}{conversion_forms[name]}" for t in fresh[n :: len(CONVERSION_FORMS)]]
        runs.append((name, description, write_paths(name, paths, rounds), "conversions"))
    status_base = f"/postback/status?secure={token}&offer_id={offer.pk}&transaction_id="
    for name, description in STATUS_FORMS.items():
        paths = [f"{status_base}{t}&status=rejected&reason=bench" for t in approved]
        runs.append((name, description, write_paths(name, paths, rounds), "statuschanges"))
    runs += [
        (
            "duplicate",
            "rejected: duplicate conversion (409)",
            write_paths("duplicate", [f"{base}{t}" for t in converted], rounds),
            "",
        ),
        (
            "unknown",
            "rejected: unknown transaction_id (404)",
            write_paths(
                "unknown",
                [f"{base}{generate_transaction_id()}" for _ in range(min(total, 60_000))],
                rounds,
            ),
            "",
        ),
    ]
    return runs


def count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
        return cursor.fetchone()[0]


def server_command(args: argparse.Namespace) -> list[str]:
    """gunicorn with the project's config, or plain (``--plain-gunicorn``)."""
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{args.port}"]
    if args.plain_gunicorn:
        command += ["-w", str(args.workers or 4)]
        if args.threads:
            command += ["--threads", str(args.threads)]
    else:
        command += ["-c", "config/gunicorn.py"]
    return [*command, "config.wsgi"]


def start_server(env: dict[str, str], args: argparse.Namespace):
    server_env = {**os.environ, **env}
    if args.workers:
        server_env["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        server_env["GUNICORN_THREADS"] = str(args.threads)
    port = args.port
    process = subprocess.Popen(
        server_command(args),
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=open(RESULTS / "gunicorn.log", "w"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.terminate()
    sys.exit(f"gunicorn did not come up; see {RESULTS / 'gunicorn.log'}")


def run_wrk(wrk: str, args: argparse.Namespace, paths: Path, duration: int) -> dict:
    command = [
        wrk,
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{args.port}",
        "--",
        str(paths),
        str(args.wrk_threads),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50, p99 = map(float, re.search(r"LATENCY p50=([\d.]+) p99=([\d.]+)", output).groups())
    statuses = {
        k: int(v)
        for k, v in re.findall(r"(\w+)=(\d+)", output.split("STATUSES", 1)[1].split("\n")[0])
    }
    return {"rps": rps, "p50": p50, "p99": p99, "statuses": statuses, "raw": output}


def table(results: list[Result], header: str) -> str:
    out = io.StringIO()
    out.write(header + "\n\n")
    out.write(
        "| path | req/s (median) | p50 ms | p99 ms | × /healthz | req/s per round "
        "| disk flush before each round, p50 / p99 µs | answers | check |\n"
    )
    out.write("| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |\n")
    for r in results:
        answers = ", ".join(f"{k}: {v}" for k, v in r.statuses.items() if v)
        rounds = " · ".join(f"{v:,.0f}" for v in r.per_round)
        flushes = " · ".join(f"{p50:,.0f} / {p99:,.0f}" for p50, p99 in r.flush_per_round)
        out.write(
            f"| {r.path} | {r.requests_per_second:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.ratio_to_healthz:.2f} | {rounds} | {flushes} | {answers} | {r.check} |\n"
        )
    return out.getvalue()


TABLES = {
    "clicks": "tracking_click",
    "conversions": "tracking_conversion",
    "eventrecords": "tracking_eventrecord",
    # A status postback's change writes one history row of its own (source postback); the
    # events that follow it write theirs with source rule.
    "statuschanges": "tracking_statuschange WHERE source = 'postback'",
}


def measure(wrk: str, args: argparse.Namespace, name: str, paths: Path, check: str) -> dict:
    """One wrk run, and what it wrote: exactly one row (and one log row) per answer."""
    before = count(TABLES[check]) if check else 0
    logs_before = count("tracking_postbacklog")
    measured = run_wrk(wrk, args, paths, args.duration)
    # Requests still in flight when wrk stops are answered by the server but not counted
    # by wrk: at most one per connection.
    time.sleep(1)
    in_flight = args.connections
    ok = True
    notes = []
    if check:
        created = count(TABLES[check]) - before
        expected = measured["statuses"]["200"] + measured["statuses"]["3xx"]
        ok &= 0 <= created - expected <= in_flight
        notes.append(f"{created} rows for {expected} answers")
        # A path measured as accepted answers nothing else (a used-up pool of clicks would
        # measure duplicates' 409s and still find one row per answer).
        others = sum(v for k, v in measured["statuses"].items() if k not in ("200", "3xx"))
        if others:
            ok = False
            notes.append(f"{others} answers neither 200 nor a redirect")
    if name not in ("healthz", "click"):
        logged = count("tracking_postbacklog") - logs_before
        total = sum(v for k, v in measured["statuses"].items() if k != "errors")
        ok &= 0 <= logged - total <= in_flight
        notes.append(f"{logged} log rows for {total} answers")
    return {**measured, "ok": ok, "notes": notes}


def healthz_run(wrk: str, args: argparse.Namespace, paths: Path, round_: int) -> dict:
    result = run_wrk(wrk, args, paths, args.healthz_duration)
    result |= {"ok": True, "notes": [], "healthz_rps": result["rps"], "round": round_}
    report_run(round_, "healthz", result)
    return result


def report_run(round_: int, name: str, result: dict) -> None:
    print(
        f"round {round_ + 1} {name:>10}: {result['rps']:8,.0f} req/s  p50 "
        f"{result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms  "
        f"{result['statuses']}  {'; '.join(result['notes'])}"
        f"{'  disk flush before: ' + str(result['flush']) if 'flush' in result else ''}"
        f"{'' if result['ok'] else '  ✗ CHECK FAILED'}",
        flush=True,
    )


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = setup_django(args.database, args.db_over)
    size = max(20_000, args.duration * 2_500)  # paths per run, more than any run uses
    # Converted clicks for every event form, but never more than half the clicks: the
    # conversion forms need unconverted ones.
    needed = max(CONVERTED, size * args.rounds * (len(EVENT_FORMS) + len(STATUS_FORMS)))
    defs = prepare(
        args.clicks,
        converted=min(needed, args.clicks // 2),
        rules=args.rules,
        fresh=size * args.rounds * len(CONVERSION_FORMS),
    )
    publisher_postbacks(defs, enabled=args.publisher_postbacks)
    runs = scenarios(defs, size=size, rounds=args.rounds)
    if args.only:
        wanted = set(args.only.split(","))
        runs = [run for run in runs if run[0] in wanted or run[0] == "healthz"]
    (_, _, healthz_paths, _), *others = runs  # scenarios() puts /healthz first
    flush_at, flush_where = flush_directory()
    flush_before = flush_latency(flush_at)
    print(f"disk flush (8 kB write + fdatasync {flush_where}): {flush_before}", flush=True)
    started = time.gmtime()
    server = start_server(env, args)
    measured: dict[str, list[dict]] = {name: [] for name, *_ in runs}
    try:
        # Warm every worker's connection and caches before measuring.
        run_wrk(wrk, args, healthz_paths[0], 2)
        # Rounds of every scenario, so that a slow or fast spell of this shared machine
        # touches all of them alike; within a round a /healthz run comes before and after
        # every other path, and that path's ratio is to the mean of the two.
        for round_ in range(args.rounds):
            before = healthz_run(wrk, args, healthz_paths[round_], round_)
            measured["healthz"].append(before)
            for name, _, paths, check in others:
                settle()
                flush = flush_latency(flush_at, samples=200)
                result = measure(wrk, args, name, paths[round_], check)
                result |= {"round": round_, "flush": flush}
                report_run(round_, name, result)
                after = healthz_run(wrk, args, healthz_paths[round_], round_)
                measured["healthz"].append(after)
                result["healthz_rps"] = (before["rps"] + after["rps"]) / 2
                measured[name].append(result)
                before = after
    finally:
        server.terminate()
        server.wait(timeout=30)
    flush_after = flush_latency(flush_at)
    print(f"disk flush after the runs: {flush_after}", flush=True)
    results = []
    for name, description, _, check in runs:
        runs_of = measured[name]
        statuses: dict[str, int] = {}
        for m in runs_of:
            for key, value in m["statuses"].items():
                statuses[key] = statuses.get(key, 0) + value
        checked = check or name not in ("healthz", "click")
        results.append(
            Result(
                name,
                description,
                statistics.median(m["rps"] for m in runs_of),
                statistics.median(m["p50"] for m in runs_of),
                statistics.median(m["p99"] for m in runs_of),
                statuses,
                ratio_to_healthz=statistics.median(m["rps"] / m["healthz_rps"] for m in runs_of),
                check=("✓ every round" if all(m["ok"] for m in runs_of) else "✗")
                if checked
                else "",
                per_round=[
                    statistics.median(m["rps"] for m in runs_of if m["round"] == round_)
                    for round_ in range(args.rounds)
                ],
                flush_per_round=[
                    (m["flush"].p50_us, m["flush"].p99_us) for m in runs_of if "flush" in m
                ],
            )
        )
    if args.plain_gunicorn:
        threads = f" --threads {args.threads}" if args.threads else ""
        server_model = f"plain `gunicorn config.wsgi -w {args.workers or 4}{threads}` (no config)"
    else:
        workers = os.environ.get("GUNICORN_WORKERS") or args.workers
        threads = os.environ.get("GUNICORN_THREADS") or args.threads
        server_model = f"gunicorn {workers or 'default'} workers" + (
            f" × {threads} threads" if threads and int(threads) > 1 else " (config/gunicorn.py)"
        )
    header = (
        f"`make bench` on {os.cpu_count()} cores, {count('tracking_click'):,} clicks, "
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s × "
        f"{args.rounds} rounds (medians; /healthz {args.healthz_duration}s before and after "
        f"each path), {server_model}, "
        f"{'publisher postbacks on every offer, ' if args.publisher_postbacks else ''}"
        f"PostgreSQL over "
        f"{'its Unix socket' if args.db_over == 'socket' else 'TCP'} "
        f"(started {time.strftime('%Y-%m-%d %H:%M UTC', started)}); disk flush (8 kB write + "
        f"fdatasync) {flush_before} before the runs, {flush_after} after them"
    )
    report = table(results, header)
    print("\n" + report)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"postbacks-{stamp}.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2)
    )
    if args.write_docs:
        write_between_markers(MARK_START, MARK_END, report)


if __name__ == "__main__":
    main()
