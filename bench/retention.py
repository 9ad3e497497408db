"""``make bench-retention``: partitions and retention under load (issue #18, docs/scaling.md).

On its own PostgreSQL database (``--database``, default ``clicktrail_bench_retention``), with
gunicorn in the production configuration and wrk as in ``make bench`` (bench/postbacks.py):

1. **Partitioned vs not**: ``/click``, accepted event postbacks and accepted conversions,
   each ``--duration`` seconds, on the log as one table (migrated back to the migration
   before 0007) and as monthly partitions (0007), alternating ``--rounds`` times.
2. **Dropping a month**: ``--log-rows`` postback log rows (10M by default) over the three
   months just past ``POSTBACK_LOG_RETENTION_DAYS`` (loaded straight into their partitions),
   plus ``--old-clicks`` unconverted clicks past ``CLICK_RETENTION_DAYS``; one month is
   dropped on an idle server and timed.
3. **Postbacks during a prune**: accepted event postbacks for ``--duration`` seconds before,
   during and after a ``manage.py prune --apply`` (which drops the other two months, then
   deletes the old clicks in batches); the rate during it against the mean of before and
   after, and whether the prune was still running when the measured run ended. Then
   ``--windows`` pairs of runs with the prune working and stopped (SIGSTOP, SIGCONT): the
   median of their ratios is the figure the machine's drift over minutes does not move.

Every count and duration is an argument, so a small run verifies it in a minute:
``make bench-retention BENCH_ARGS="--log-rows 30000 --old-clicks 5000 --clicks 20000
--duration 3 --rounds 1"``. Results go to ``bench/results/``; ``--write-docs`` puts the
table into docs/benchmarks.md between its ``retention`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from bench.docs import write_between_markers
from bench.postbacks import (
    RESULTS,
    ROOT,
    add_server_arguments,
    count,
    ensure_wrk,
    load_clicks,
    prepare,
    run_wrk,
    scenarios,
    setup_django,
    start_server,
)

MARK_START, MARK_END = "<!-- retention:start -->", "<!-- retention:end -->"
TABLE = "tracking_postbacklog"
#: prepare()'s clicks are made on this day; the prune keeps them (the postbacks use them).
PREPARED_CLICKS_DAY = datetime(2026, 1, 1, tzinfo=UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-rows", type=int, default=10_000_000, help="over three months")
    parser.add_argument(
        "--old-clicks",
        type=int,
        default=2_000_000,
        help="unconverted clicks past retention, deleted by the prune under load",
    )
    parser.add_argument("--clicks", type=int, default=1_000_000, help="clicks to postback to")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the layout comparison")
    add_server_arguments(parser, port=8097, database="clicktrail_bench_retention")
    parser.add_argument("--batch-size", type=int, default=1000, help="prune's --batch-size")
    parser.add_argument("--pause", type=float, default=0.0, help="prune's --pause (seconds)")
    parser.add_argument(
        "--pause-factor", type=float, default=None, help="prune's --pause-factor (its default)"
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=4,
        help="pairs of runs with the prune working and stopped, after the first run during it",
    )
    parser.add_argument("--skip-layouts", action="store_true", help="skip step 1")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    # The server as make bench starts it by default (bench/postbacks.py start_server).
    parser.set_defaults(plain_gunicorn=False)
    return parser.parse_args()


def pool_size(args: argparse.Namespace) -> int:
    """Paths per wrk run: more than a run uses, and few enough that a third of the clicks
    stay unconverted for the conversion runs."""
    return max(2_000, min(args.duration * 3_000, args.clicks // 6))


def migrate_to(partitioned: bool) -> None:
    """The log as monthly partitions (the latest migrations) or as one table (before 0007)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    if partitioned:
        call_command("migrate", verbosity=0)
        return
    graph = MigrationExecutor(connection).loader.graph
    node = graph.node_map[("tracking", "0007_postbacklog_partitions")]
    (parent,) = [p.key for p in node.parents if p.key[0] == "tracking"]
    call_command("migrate", *parent, verbosity=0)


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")


def measure_layouts(wrk: str, args: argparse.Namespace, env: dict, defs: dict) -> list[dict]:
    """Step 1: click, event and conversion rates with the log as one table and partitioned."""
    size = pool_size(args)
    rows = []
    for round_ in range(args.rounds):
        # One layout first in even rounds, the other in odd ones.
        for partitioned in (False, True) if round_ % 2 == 0 else (True, False):
            migrate_to(partitioned)
            vacuum()
            runs = {name: paths for name, _, paths, _ in scenarios(defs, size=size)}
            server = start_server(env, args)
            try:
                run_wrk(wrk, args, runs["healthz"][0], 2)  # warm the workers
                for name in ("click", "event", "conversion"):
                    result = run_wrk(wrk, args, runs[name][0], args.duration)
                    layout = "partitioned" if partitioned else "one table"
                    rows.append({"round": round_, "layout": layout, "path": name, **result})
                    print(
                        f"round {round_ + 1} {layout:>11} {name:>10}: {result['rps']:8,.0f} "
                        f"req/s  p99 {result['p99']:.1f} ms  {result['statuses']}",
                        flush=True,
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
            defs = prepare(args.clicks, converted=size * 3)
    return rows


def insert_cost(rounds: int, inserts: int = 3_000) -> dict[str, list[float]]:
    """µs per single-row insert of a rejected postback's log row, prepared and sent one by
    one from this process (as the tracking path does, without HTTP), into the partitioned
    log and into a plain table with the same columns and indexes, alternating ``rounds``
    times so the machine's swings touch both alike."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    columns = (
        "created_at, method, params, secure_masked, ip, user_agent, status_code, reason, "
        "message, type, transaction_id, offer_id"
    )
    with raw.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain_log")
        cursor.execute(f"CREATE TABLE bench_plain_log (LIKE {TABLE} INCLUDING ALL)")
        cursor.execute("ALTER TABLE bench_plain_log DROP CONSTRAINT bench_plain_log_pkey")
        cursor.execute("ALTER TABLE bench_plain_log ADD PRIMARY KEY (id)")
    raw.commit()
    costs: dict[str, list[float]] = {"one table": [], "partitioned": []}
    for _ in range(rounds):
        for layout, table in (("one table", "bench_plain_log"), ("partitioned", TABLE)):
            sql = (
                f"INSERT INTO {table} ({columns}) VALUES (now(), 'GET', '{{}}', 'abcd', "  # noqa: S608
                "'203.0.113.1', 'bench', 404, 'unknown_transaction', '', 'event', %s, 1)"
            )
            started = time.perf_counter()
            for n in range(inserts):
                raw.execute(sql, [f"bench{n}"], prepare=True)
                raw.commit()
            costs[layout].append((time.perf_counter() - started) / inserts * 1e6)
    with raw.cursor() as cursor:
        cursor.execute("DROP TABLE bench_plain_log")
        cursor.execute(f"DELETE FROM {TABLE} WHERE transaction_id LIKE 'bench%%'")  # noqa: S608
    raw.commit()
    print(
        "µs per log insert (one table · partitioned, medians): "
        f"{statistics.median(costs['one table']):,.0f} · "
        f"{statistics.median(costs['partitioned']):,.0f}",
        flush=True,
    )
    return costs


def load_log(rows: int, now: datetime) -> list[str]:
    """``rows`` log rows over the three months just past retention, each month made as a
    partition with its rows (tracking/partitions.py, as the migration does); return them."""
    from django.conf import settings
    from django.db import connection, transaction

    from tracking import partitions
    from tracking.retention import log_cutoff

    cutoff = log_cutoff(now=now, retention_days=settings.POSTBACK_LOG_RETENTION_DAYS)
    months = [partitions.add_months(cutoff, n) for n in (-3, -2, -1)]
    names = [partitions.partition_name(TABLE, month) for month in months]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
        cursor.execute("DROP TABLE IF EXISTS bench_log_staging")
        cursor.execute(f"CREATE UNLOGGED TABLE bench_log_staging (LIKE {TABLE} INCLUDING DEFAULTS)")
        span = (partitions.add_months(months[-1], 1) - months[0]).total_seconds()
        # 85 % accepted (linked to a record), the rest unknown transactions; transaction_ids
        # spread like real ones (the index on them is as big as it would be).
        cursor.execute(
            f"""
            INSERT INTO bench_log_staging
                (id, created_at, method, params, secure_masked, ip, user_agent, status_code,
                 reason, message, type, transaction_id, advertiser_id, offer_id, event_id,
                 click_id, conversion_id, event_record_id)
            SELECT nextval(pg_get_serial_sequence('{TABLE}', 'id')),
                   %s::timestamptz + (g * %s / %s) * interval '1 second',
                   'GET', '{{}}', 'abcd••••', '203.0.113.10', 'bench', CASE WHEN g %% 20 < 17
                   THEN 200 ELSE 404 END,
                   CASE WHEN g %% 20 < 17 THEN 'accepted' ELSE 'unknown_transaction' END, '',
                   'event', md5(g::text), 1, 1, 1, g, NULL,
                   CASE WHEN g %% 20 < 17 THEN g END
            FROM generate_series(0, %s - 1) AS g
            """,  # noqa: S608 - constants only
            [months[0], span, rows, rows],
        )
        for month in months:
            partitions.create_partition(
                cursor, table=TABLE, month=month, copy_from="bench_log_staging"
            )
        cursor.execute("DROP TABLE bench_log_staging")
    print(
        f"Loaded {rows:,} log rows into {', '.join(names)} in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return names


def load_old_clicks(count_: int, at: datetime, offer_id: int, publisher_id: int) -> None:
    """``count_`` clicks spread over the day that starts at ``at``."""
    load_clicks(
        count_,
        offer_id=offer_id,
        publisher_id=publisher_id,
        aff_sub="old",
        created_at=lambda n: at + timedelta(seconds=n % 86_400),
    )


def drop_timed(name: str) -> tuple[float, float]:
    """Seconds the log was locked (detach) and seconds removing the files took (drop)."""
    from tracking.partitions import drop_partition

    dropped = drop_partition(TABLE, name)
    return dropped.detach, dropped.drop


def measure_prune(wrk: str, args: argparse.Namespace, env: dict, defs: dict, now: datetime) -> dict:
    """Steps 2 and 3."""
    from django.conf import settings

    names = load_log(args.log_rows, now)
    keep_days = (now - PREPARED_CLICKS_DAY).days + 2  # keeps prepare()'s clicks
    load_old_clicks(
        args.old_clicks,
        now - timedelta(days=keep_days + 30),
        defs["offer"].pk,
        defs["publisher"].pk,
    )
    vacuum()
    size = pool_size(args)
    runs = 2 + 2 * args.windows
    defs = prepare(args.clicks, converted=size * runs)
    (event_paths,) = [
        paths for name, _, paths, _ in scenarios(defs, size=size, rounds=runs) if name == "event"
    ]
    idle_detach, idle_drop = drop_timed(names[0])
    print(
        f"Dropped {names[0]} (idle): log locked {idle_detach * 1000:.1f} ms (detach), "
        f"files removed in {idle_drop * 1000:.1f} ms",
        flush=True,
    )
    prune_env = {
        **os.environ,
        **env,
        "CLICK_RETENTION_DAYS": str(keep_days),
        "POSTBACK_LOG_RETENTION_DAYS": str(settings.POSTBACK_LOG_RETENTION_DAYS),
    }
    server = start_server(env, args)
    try:
        run_wrk(wrk, args, event_paths[0], 2)  # warm the workers
        before = run_wrk(wrk, args, event_paths[0], args.duration)
        print(f"event postbacks before the prune: {before['rps']:,.0f} req/s", flush=True)
        log_path = RESULTS / "prune.log"
        with open(log_path, "w") as log:
            started = time.monotonic()
            prune = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "prune",
                    "--apply",
                    "--batch-size",
                    str(args.batch_size),
                    "--pause",
                    str(args.pause),
                    *(
                        ["--pause-factor", str(args.pause_factor)]
                        if args.pause_factor is not None
                        else []
                    ),
                ],
                cwd=ROOT,
                env=prune_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            during = run_wrk(wrk, args, event_paths[1], args.duration)
            still_running = prune.poll() is None
            # Then pairs of runs with the prune working and stopped (SIGSTOP: it holds
            # still between or inside a batch), so the machine's drift over minutes falls
            # on both sides alike.
            working, stopped = [], []
            for window in range(args.windows):
                if prune.poll() is not None:
                    break
                working.append(run_wrk(wrk, args, event_paths[2 + 2 * window], args.duration))
                if prune.poll() is not None:
                    working.pop()
                    break
                prune.send_signal(signal.SIGSTOP)
                try:
                    stopped.append(run_wrk(wrk, args, event_paths[3 + 2 * window], args.duration))
                finally:
                    prune.send_signal(signal.SIGCONT)
            prune.wait()
            prune_seconds = time.monotonic() - started
        print(
            f"event postbacks during the prune: {during['rps']:,.0f} req/s "
            f"(prune {'still running' if still_running else 'finished'} at the end of the run; "
            f"it took {prune_seconds:.1f} s)",
            flush=True,
        )
        print(
            "working / stopped: "
            + ", ".join(
                f"{w['rps']:,.0f} / {p['rps']:,.0f}" for w, p in zip(working, stopped, strict=True)
            ),
            flush=True,
        )
        after = run_wrk(wrk, args, event_paths[-1], args.duration)
        print(f"event postbacks after the prune: {after['rps']:,.0f} req/s", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log_path.read_text()
    if prune.returncode:
        sys.exit(f"prune failed:\n{output}")
    drops = [
        (name, float(seconds))
        for name, seconds in re.findall(r"dropped partition (\S+): detached in ([\d.]+) s", output)
    ]
    deleted = re.search(r"([\d,]+) clicks deleted", output)
    return {
        "log_rows": args.log_rows,
        "idle_detach_ms": idle_detach * 1000,
        "idle_drop_ms": idle_drop * 1000,
        "loaded_detach_ms": [(name, seconds * 1000) for name, seconds in drops],
        "loaded_drops_ms": [
            (name, float(seconds) * 1000)
            for name, seconds in re.findall(
                r"dropped partition (\S+): .*files removed in ([\d.]+) s", output
            )
        ],
        "before": before,
        "during": during,
        "after": after,
        "ratio": during["rps"] / ((before["rps"] + after["rps"]) / 2),
        "working": [w["rps"] for w in working],
        "stopped": [p["rps"] for p in stopped],
        "paired_ratio": (
            statistics.median(w["rps"] / p["rps"] for w, p in zip(working, stopped, strict=True))
            if stopped
            else None
        ),
        "prune_seconds": prune_seconds,
        "prune_still_running": still_running,
        "clicks_deleted": int(deleted.group(1).replace(",", "")) if deleted else 0,
        "prune_output": output,
    }


def report(
    args: argparse.Namespace,
    layouts: list[dict],
    inserts: dict[str, list[float]],
    prune: dict,
    started: str,
) -> str:
    from tracking.retention import DEFAULT_PAUSE_FACTOR

    pause_factor = DEFAULT_PAUSE_FACTOR if args.pause_factor is None else args.pause_factor
    lines = [
        f"`make bench-retention` on {os.cpu_count()} cores (started {started}): "
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s, gunicorn "
        f"(config/gunicorn.py), PostgreSQL over "
        f"{'its Unix socket' if args.db_over == 'socket' else 'TCP'}, {count('tracking_click'):,} "
        "clicks after the prune.",
        "",
    ]
    if layouts:
        lines += [
            "| path | one table, req/s | partitioned, req/s | partitioned ÷ one table |",
            "| --- | ---: | ---: | ---: |",
        ]
        for path in ("click", "event", "conversion"):
            one = [r["rps"] for r in layouts if r["path"] == path and r["layout"] == "one table"]
            part = [r["rps"] for r in layouts if r["path"] == path and r["layout"] == "partitioned"]
            lines.append(
                f"| {path} | {' · '.join(f'{v:,.0f}' for v in one)} "
                f"| {' · '.join(f'{v:,.0f}' for v in part)} "
                f"| {statistics.median(part) / statistics.median(one):.2f} |"
            )
        lines.append("")
    one, part = (statistics.median(inserts[k]) for k in ("one table", "partitioned"))
    lines += [
        "One log row inserted and committed at a time from one connection (prepared, no "
        f"HTTP), alternating {len(inserts['one table'])} rounds: one table "
        f"{one:,.0f} µs, partitioned {part:,.0f} µs per insert ({part / one:.2f}×).",
        "",
    ]
    ending = (
        ", still running when the run ended"
        if prune["prune_still_running"]
        else ", ended before the run did"
    )
    loaded = ", ".join(f"{ms:,.0f} ms" for _, ms in prune["loaded_detach_ms"]) or "none"
    loaded_files = ", ".join(f"{ms:,.0f} ms" for _, ms in prune["loaded_drops_ms"]) or "none"
    lines += [
        f"| {prune['log_rows']:,} log rows over three months | |",
        "| --- | ---: |",
        f"| drop one month (~{prune['log_rows'] // 3:,} rows), idle: the log locked (detach) "
        f"| {prune['idle_detach_ms']:,.1f} ms |",
        f"| … its files removed (drop, nothing locked) | {prune['idle_drop_ms']:,.0f} ms |",
        f"| the other months during the prune, under load: the log locked | {loaded} |",
        f"| … their files removed | {loaded_files} |",
        f"| accepted event postbacks before the prune | {prune['before']['rps']:,.0f} req/s |",
        f"| … during the prune | {prune['during']['rps']:,.0f} req/s "
        f"(p99 {prune['during']['p99']:.1f} ms) |",
        f"| … after the prune | {prune['after']['rps']:,.0f} req/s |",
        f"| during ÷ mean of before and after | {prune['ratio']:.2f} |",
        "| then in pairs, the prune working / stopped (SIGSTOP), req/s | "
        + (
            " · ".join(
                f"{w:,.0f} / {p:,.0f}"
                for w, p in zip(prune["working"], prune["stopped"], strict=True)
            )
            or "none (the prune ended first)"
        )
        + " |",
        "| **working ÷ stopped, median of the pairs** | "
        + ("—" if prune["paired_ratio"] is None else f"**{prune['paired_ratio']:.2f}**")
        + " |",
        f"| the prune: {prune['clicks_deleted']:,} old clicks deleted, batches of "
        f"{args.batch_size}, --pause {args.pause}, --pause-factor {pause_factor:g} "
        f"| {prune['prune_seconds']:.1f} s"
        f"{ending} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = setup_django(args.database, args.db_over)
    from django.utils import timezone

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    defs = prepare(args.clicks, converted=pool_size(args) * 3)
    layouts = [] if args.skip_layouts else measure_layouts(wrk, args, env, defs)
    migrate_to(True)
    inserts = insert_cost(max(args.rounds, 3) * 2)
    prune = measure_prune(wrk, args, env, defs, timezone.now())
    text = report(args, layouts, inserts, prune, started)
    print("\n" + text)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"retention-{stamp}.json").write_text(
        json.dumps({"layouts": layouts, "prune": prune}, indent=2, default=str)
    )
    if args.write_docs:
        write_between_markers(MARK_START, MARK_END, text)


if __name__ == "__main__":
    main()
