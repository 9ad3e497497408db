"""``make bench-deliveries``: publisher postback deliveries per second.

A local receiver (a small asyncio HTTP server in its own process, keep-alive, answering
``200`` after ``--delay`` milliseconds: 100 ms plays a slow publisher, 0 ms a fast one)
takes the requests of one or two ``manage.py deliver_postbacks`` workers (production
settings, PostgreSQL: ``--database``, created and migrated when missing). Each round
queues ``--deliveries`` deliveries (one bulk ``INSERT``), starts the workers with
``--until-idle`` and measures from the first attempt to the last recorded one (the
attempts' own times, so a worker's start-up is not counted), then checks that every
delivery was delivered exactly once. The SPEC's target: at least 500 deliveries/s with
one worker against the 100 ms receiver.

Results go to ``bench/results/deliveries-<time>.json`` and, with ``--write-docs``, into
docs/benchmarks.md between its ``deliveries`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.docs import write_between_markers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MARK_START, MARK_END = "<!-- deliveries:start -->", "<!-- deliveries:end -->"

RECEIVER = r"""
import asyncio, sys

DELAY = float(sys.argv[2]) / 1000
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            if DELAY:
                await asyncio.sleep(DELAY)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000, help="queued per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (median)")
    parser.add_argument("--delays", default="100,0", help="receiver delays in ms")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--concurrency", type=int, default=100, help="per worker")
    parser.add_argument("--database", default="clicktrail_bench_deliveries")
    parser.add_argument("--port", type=int, default=8097, help="the receiver's port")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    return parser.parse_args()


def setup_django(database: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        # The receiver listens on loopback.
        "OUTBOUND_ALLOW_PRIVATE_NETWORKS": "True",
        "LOG_LEVEL": "WARNING",
    }
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


def prepare(count: int) -> int:
    """A publisher with a conversion postback and at least ``count`` conversions (made
    once, kept for later runs): each queued delivery reports one of them."""
    from offers.models import Publisher, PublisherPostback
    from tests.factories import ClickFactory, ConversionFactory, OfferFactory  # dev deps
    from tracking.models import Click, Conversion
    from tracking.services import generate_transaction_id

    publisher, _ = Publisher.objects.get_or_create(name="Bench deliveries publisher")
    postback, _ = PublisherPostback.objects.get_or_create(
        publisher=publisher, trigger="conversion", defaults={"url": "http://127.0.0.1/"}
    )
    have = Conversion.objects.filter(publisher=publisher).count()
    if have < count:
        first = Conversion.objects.filter(publisher=publisher).select_related("offer").first()
        offer = first.offer if first else OfferFactory(name="Bench deliveries offer")
        if first is None:
            ConversionFactory(click__offer=offer, click__publisher=publisher)
            have += 1
        clicks = Click.objects.bulk_create(
            [
                ClickFactory.build(
                    offer=offer, publisher=publisher, transaction_id=generate_transaction_id()
                )
                for _ in range(count - have)
            ],
            batch_size=2000,
        )
        Conversion.objects.bulk_create(
            [
                ConversionFactory.build(click=click, offer=offer, publisher=publisher)
                for click in clicks
            ],
            batch_size=2000,
        )
    return postback.pk


def queue(count: int, url: str, postback_id: int) -> None:
    """``count`` due deliveries to ``url`` in one statement, one per conversion."""
    from django.db import connection

    from tracking.models import Delivery, DeliveryAttempt

    DeliveryAttempt.objects.all().delete()
    Delivery.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO tracking_delivery (postback_id, publisher_id, offer_id, trigger,
                record_type, conversion_id, transaction_id, url, outcome, attempt_count,
                next_attempt_at, last_error, created_at, record_created_at)
            SELECT p.id, p.publisher_id, v.offer_id, 'conversion', 'conversion', v.id,
                   'bench', %(url)s || '?d=' || v.id, 'queued', 0, now(), '', now(),
                   v.created_at
            FROM offers_publisherpostback p
            JOIN LATERAL (
                SELECT id, offer_id, created_at FROM tracking_conversion
                WHERE publisher_id = p.publisher_id ORDER BY id LIMIT %(count)s
            ) AS v ON TRUE
            WHERE p.id = %(postback)s
            """,
            {"url": url, "count": count, "postback": postback_id},
        )
        cursor.execute("VACUUM ANALYZE tracking_delivery")


def start_receiver(port: int, delay_ms: float) -> subprocess.Popen:
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port), str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    if receiver.stdout.readline().strip() != "ready":
        raise RuntimeError("the receiver did not start")
    return receiver


def run_round(env: dict[str, str], workers: int, concurrency: int, count: int) -> dict:
    from django.db.models import Count, Max, Min

    from tracking.models import Delivery, DeliveryAttempt

    started = time.monotonic()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "deliver_postbacks",
                "--until-idle",
                "--concurrency",
                str(concurrency),
                "--poll",
                "0.2",
                "-v",
                "0",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
        )
        for _ in range(workers)
    ]
    for process in processes:
        if process.wait(timeout=3600) != 0:
            raise RuntimeError("a worker failed")
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    span = DeliveryAttempt.objects.aggregate(first=Min("at"), last=Max("at"), n=Count("id"))
    outcomes = dict(
        Delivery.objects.values_list("outcome").annotate(n=Count("id")).order_by("outcome")
    )
    # The attempts' own times: from the first request's start to the last one's start plus
    # its duration (a worker's Django start-up is not the sender's speed).
    last = DeliveryAttempt.objects.order_by("-at").values_list("at", "duration_ms").first()
    seconds = (last[0] - span["first"]).total_seconds() + last[1] / 1000
    return {
        "deliveries_per_second": round(count / seconds, 1),
        "seconds": round(seconds, 2),
        "wall_seconds": round(wall, 2),
        # The workers' own CPU time per delivery, start-up included: a figure that does not
        # depend on what else the machine runs.
        "worker_cpu_ms_per_delivery": round(cpu * 1000 / count, 3),
        "attempts": span["n"],
        "outcomes": outcomes,
        "check": "ok" if outcomes == {"delivered": count} and span["n"] == count else "MISMATCH",
    }


def free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"port {port} is taken: pass --port") from exc


def table(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| receiver answers after | workers | deliveries/s (median) | per round "
        "| worker CPU per delivery | check |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        rounds = ", ".join(f"{r['deliveries_per_second']:,.0f}" for r in row["rounds"])
        cpu = statistics.median(r["worker_cpu_ms_per_delivery"] for r in row["rounds"])
        lines.append(
            f"| {row['delay_ms']:g} ms | {row['workers']} | {row['median']:,.0f} | {rounds} "
            f"| {cpu:.2f} ms | {row['check']} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    free(args.port)
    env = setup_django(args.database)
    postback_id = prepare(args.deliveries)
    url = f"http://127.0.0.1:{args.port}/pb"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for delay in [float(d) for d in args.delays.split(",")]:
        receiver = start_receiver(args.port, delay)
        try:
            for workers in [int(w) for w in args.workers.split(",")]:
                rounds = []
                for round_ in range(args.rounds):
                    queue(args.deliveries, url, postback_id)
                    result = run_round(env, workers, args.concurrency, args.deliveries)
                    print(
                        f"delay {delay:g} ms, {workers} worker(s), round {round_ + 1}: "
                        f"{result['deliveries_per_second']:,.0f} deliveries/s "
                        f"({result['check']})",
                        flush=True,
                    )
                    rounds.append(result)
                rows.append(
                    {
                        "delay_ms": delay,
                        "workers": workers,
                        "median": statistics.median(r["deliveries_per_second"] for r in rounds),
                        "rounds": rounds,
                        "check": "ok" if all(r["check"] == "ok" for r in rounds) else "MISMATCH",
                    }
                )
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    header = (
        f"Deliveries per second, {stamp}: {args.deliveries:,} deliveries per round, "
        f"{args.rounds} round(s), {args.concurrency} requests in flight per worker, "
        f"{os.cpu_count()} CPU(s)."
    )
    text = table(rows, header)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"deliveries-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))
    print(f"\nresults: {out.relative_to(ROOT)}")
    if args.write_docs:
        write_between_markers(MARK_START, MARK_END, f"{text}\n")


if __name__ == "__main__":
    main()
