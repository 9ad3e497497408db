"""``make bench-against REF=<commit>``: postbacks against an earlier commit's, both servers
loaded at once.

A target like "accepted postbacks stay within noise of before" compares two commits, and
two ``make bench`` runs minutes apart compare two spells of a shared machine whose speed
moves by more than the difference sought (its ``/healthz`` rate has halved within an hour
here). So this runs both at the same time: the earlier commit is checked out into its own
worktree with its own virtualenv (its own pinned dependencies), each commit's ``make
bench`` prepares its own database (``--clicks`` clicks; the earlier one's is
``clicktrail_bench_against``), both are served by gunicorn with their own
``config/gunicorn.py``, and two ``wrk`` drive them for the same seconds. The two servers
then share the machine's cores as one load, and the ratio of their rates is the ratio of
what a postback costs each, whatever the machine does meanwhile. Each path is run
``--runs`` times; the report gives each run's ratio (this checkout ÷ the earlier commit)
and their median. Every answer of a run must be the path's own (``200`` for an accepted
path): a pool of clicks used up would measure duplicates.

Results go to ``bench/results/`` and, with ``--write-docs``, into docs/benchmarks.md between
its ``against`` markers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from bench import postbacks as bench
from bench.docs import write_between_markers

THEIR_DATABASE = "clicktrail_bench_against"
OUR_DATABASE = "clicktrail_bench_postbacks"
#: Each path measured: (what it is, the answer each of its requests must get).
PATHS = {
    "conversion": ("accepted conversion, offer URL (offer_id)", "200"),
    "event": ("accepted event, generated event URL (offer_id, event_id, event_name; CPS)", "200"),
    "duplicate": ("rejected: duplicate conversion (409)", "409"),
    "unknown": ("rejected: unknown transaction_id (404)", "4xx"),
}
#: More paths per second of a run than one of the two servers answers.
PATHS_PER_SECOND = 1_500


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--runs", type=int, default=10, help="runs of each path")
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--clicks", type=int, default=650_000, help="clicks in each database")
    parser.add_argument("--only", default=",".join(PATHS), help="comma-separated paths")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    return parser.parse_args()


def checkout(ref: str) -> tuple[Path, str]:
    """The earlier commit's worktree and virtualenv (made once per commit, then reused)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=bench.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    where = bench.RESULTS / f"against-{sha[:12]}"
    if not where.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(where), sha], cwd=bench.ROOT, check=True
        )
    python = where / ".venv" / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where / ".venv")], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(where)], check=True
        )
    return where, sha


def prepare(root: Path, python: str, database: str, clicks: int, fresh: int, port: int) -> None:
    """The commit's own bench setup: its schema, definitions and at least ``clicks`` clicks
    in ``database``, ``fresh`` of them without a conversion (each accepted conversion uses
    one up for good; a commit's bench only loads clicks up to ``--clicks``, so that is
    raised by what earlier runs used)."""
    try:
        with connect(database) as conn:
            have, unconverted = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM "
                "tracking_conversion v WHERE v.click_id = c.id)) FROM tracking_click c"
            ).fetchone()
        clicks = max(clicks, have + max(0, fresh - unconverted))
    except psycopg.Error:
        pass  # a database not made yet: the bench makes it
    subprocess.run(
        [python, "-m", "bench.postbacks", "--clicks", str(clicks), "--rounds", "1"]
        + ["--duration", "1", "--only", "healthz", "--database", database, "--port", str(port)],
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with connect(database) as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def connect(database: str) -> psycopg.Connection:
    return psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")


def paths(database: str, name: str, count: int) -> list[str]:
    """``count`` requests of the path, in random order, from the database's own clicks."""
    with connect(database) as conn:
        token, offer_id, event_id = conn.execute(
            "SELECT a.postback_token, o.id, e.id FROM offers_offer o "
            "JOIN offers_advertiser a ON a.id = o.advertiser_id "
            "JOIN offers_event e ON e.offer_id = o.id AND e.name = 'purchase' "
            "WHERE o.name = 'Bench offer'"
        ).fetchone()
        # A commit from before record statuses has none; its conversions all count.
        has_status = conn.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'tracking_conversion' AND column_name = 'status'"
        ).fetchone()
        approved = " AND v.status = 'approved'" if has_status else ""
        if name == "unknown":
            ids = [secrets.token_urlsafe(24) for _ in range(count)]
        else:
            where = {
                "conversion": "NOT EXISTS (SELECT 1 FROM tracking_conversion v "
                "WHERE v.click_id = c.id)",
                "event": "EXISTS (SELECT 1 FROM tracking_conversion v WHERE v.click_id = c.id"
                f"{approved}) AND NOT EXISTS (SELECT 1 FROM tracking_eventrecord r "
                f"WHERE r.click_id = c.id AND r.event_id = {int(event_id)})",
                "duplicate": "EXISTS (SELECT 1 FROM tracking_conversion v WHERE v.click_id = c.id)",
            }[name]
            rows = conn.execute(
                f"SELECT transaction_id FROM tracking_click c WHERE {where} "  # noqa: S608
                "ORDER BY random() LIMIT %s",
                [count],
            ).fetchall()
            ids = [row[0] for row in rows]
    if len(ids) < count:
        sys.exit(f"{database}: only {len(ids)} clicks for {count} {name} postbacks")
    base = f"/postback?secure={token}&transaction_id="
    tail = {
        "conversion": f"&offer_id={offer_id}",
        "event": f"&offer_id={offer_id}&event_id={event_id}&event_name=purchase&amount=19.99",
    }.get(name, "")
    if name == "event":
        return [f"{base}{t}{tail}&adv_sub=a{k}" for k, t in enumerate(ids)]
    return [f"{base}{t}{tail}" for t in ids]


def serve(root: Path, python: str, database: str, port: int) -> subprocess.Popen:
    env = {**os.environ, **bench.server_env(database)}
    command = [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "-c"]
    process = subprocess.Popen(
        [*command, "config/gunicorn.py", "config.wsgi"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(bench.RESULTS / f"gunicorn-{port}.log", "w"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.terminate()
    sys.exit(f"gunicorn in {root} did not come up; see bench/results/gunicorn-{port}.log")


def drive(wrk: str, port: int, lines: list[str], duration: int, name: str) -> dict:
    """One ``wrk`` run (as ``make bench`` drives: 2 threads, 32 connections)."""
    file = bench.RESULTS / f"against-{port}-{name}.paths"
    file.write_text("\n".join(lines) + "\n")
    output = subprocess.run(
        [wrk, "-t2", "-c32", f"-d{duration}s", "--latency", "--timeout", "5s", "-s"]
        + [str(bench.LUA), f"http://127.0.0.1:{port}", "--", str(file), "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = {
        k: int(v)
        for k, v in re.findall(r"(\w+)=(\d+)", output.split("STATUSES", 1)[1].split("\n")[0])
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"rps": rps, "statuses": statuses}


def main() -> None:
    args = parse_args()
    wrk = bench.ensure_wrk()
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    theirs, sha = checkout(args.ref)
    sides = {
        "theirs": (theirs, str(theirs / ".venv" / "bin" / "python"), THEIR_DATABASE, 8094),
        "ours": (bench.ROOT, sys.executable, OUR_DATABASE, 8095),
    }
    names = args.only.split(",")
    size = PATHS_PER_SECOND * args.duration
    for root, python, database, port in sides.values():
        prepare(root, python, database, args.clicks, size * (args.runs + 1), port)
    pools = {
        side: {name: paths(database, name, size * (args.runs + 1)) for name in names}
        for side, (_, _, database, _) in sides.items()
    }
    servers = [serve(root, python, db, port) for root, python, db, port in sides.values()]
    started = time.gmtime()
    measured: dict[str, list[dict]] = {name: [] for name in names}
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:

            def together(name: str, run: int, duration: int) -> dict:
                futures = {
                    side: pool.submit(
                        drive,
                        wrk,
                        port,
                        pools[side][name][run * size : (run + 1) * size],
                        duration,
                        name,
                    )
                    for side, (_, _, _, port) in sides.items()
                }
                return {side: future.result() for side, future in futures.items()}

            for name in names:
                together(name, args.runs, 2)  # warms both: their caches, prepared statements
                for run in range(args.runs):
                    result = together(name, run, args.duration)
                    expected = PATHS[name][1]
                    result["ok"] = all(
                        r["statuses"].get(expected, 0) == sum(r["statuses"].values())
                        for side, r in result.items()
                    )
                    result["ratio"] = result["ours"]["rps"] / result["theirs"]["rps"]
                    measured[name].append(result)
                    print(
                        f"{name:>10} run {run + 1:2}: {sha[:7]} {result['theirs']['rps']:6,.0f} "
                        f"req/s, this checkout {result['ours']['rps']:6,.0f} req/s, ratio "
                        f"{result['ratio']:.3f}{'' if result['ok'] else '  ✗ other answers'}",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    header = (
        f"`make bench-against REF={args.ref}` ({sha[:7]}) on {os.cpu_count()} cores, "
        f"{args.clicks:,} clicks in each database, each server gunicorn with its own "
        f"config/gunicorn.py, two wrk -t2 -c32 -d{args.duration}s at once, {args.runs} runs "
        f"per path, started {time.strftime('%Y-%m-%d %H:%M UTC', started)}."
    )
    table = report(header, sha, measured)
    print("\n" + table)
    stamp = time.strftime("%Y%m%dT%H%M%S", started)
    (bench.RESULTS / f"against-{stamp}.json").write_text(json.dumps(measured, indent=1))
    if args.write_docs:
        write_between_markers("<!-- against:start -->", "<!-- against:end -->", table)


def report(header: str, sha: str, measured: dict[str, list[dict]]) -> str:
    lines = [
        header,
        "",
        f"| path | {sha[:7]}, req/s (median) | this checkout, req/s (median) | "
        "this checkout ÷ the earlier, each run | median ratio | check |",
        "| --- | ---: | ---: | --- | ---: | --- |",
    ]
    for name, runs in measured.items():
        ratios = " · ".join(f"{r['ratio']:.2f}" for r in runs)
        lines.append(
            f"| {PATHS[name][0]} | {statistics.median(r['theirs']['rps'] for r in runs):,.0f} | "
            f"{statistics.median(r['ours']['rps'] for r in runs):,.0f} | {ratios} | "
            f"{statistics.median(r['ratio'] for r in runs):.3f} | "
            f"{'✓ every run' if all(r['ok'] for r in runs) else '✗'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
