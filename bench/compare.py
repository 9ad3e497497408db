"""``make bench-compare``: what the offer rules or a publisher postback cost accepted
postbacks, as the rate with them against the rate without, paired in one run.

The targets of docs/benchmarks.md are relative: accepted postbacks with two caps and an
allow-list on the benched offer within 10 % of the rate without rules; with one publisher
postback per offer within 10 % of the rate without. Separate ``make bench`` runs minutes
apart compare two spells of a shared machine whose speed moves by more than that (its
``/healthz`` rate has halved between runs an hour apart here). So this runs one server on
the ``make bench`` database and alternates the two configurations run by run: each pair
measures each accepted path once without and once with, back to back, in an order that
flips every pair (without–with, then with–without) so that a machine speeding up or
slowing down weighs on both alike; a path's two runs of a pair follow each other, seconds
apart. Switching is what an account manager does: the caps and
allow-list (or the publisher postbacks) are written, and the workers' definitions cache
follows the version the database bumps.

It reports, per path, the median rate of each configuration, each pair's ratio (with ÷
without), their median and the cost it gives (1 − ratio), and checks as ``make bench``
does that every run wrote exactly one record and one log row per answer. Results go to
``bench/results/`` and, with ``--write-docs``, into docs/benchmarks.md between the
``compare-rules`` or ``compare-publisher-postbacks`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench import postbacks as bench
from bench.docs import write_between_markers

#: The accepted paths compared by default: the generated event URL and the offer URL's
#: conversion (``make bench``'s first event and conversion forms).
PATHS = ("event", "conversion")
WHAT = {
    "rules": "two caps per offer (conversions per day, hard; payout per month, soft) and an "
    "IP allow-list on the advertiser",
    "publisher-postbacks": "a conversion and an event publisher postback on every offer, so "
    "every accepted postback also writes its delivery",
}
TARGET = 0.10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--with",
        dest="feature",
        choices=sorted(WHAT),
        default="rules",
        help="what is switched on and off between runs",
    )
    parser.add_argument("--pairs", type=int, default=10, help="runs of each configuration")
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--clicks", type=int, default=1_000_000, help="clicks in the database")
    bench.add_server_arguments(parser, port=8098)
    parser.add_argument("--only", default=",".join(PATHS), help="comma-separated paths")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    # The server as make bench starts it by default (bench/postbacks.py start_server).
    parser.set_defaults(plain_gunicorn=False)
    return parser.parse_args()


def switch(feature: str, defs: dict[str, object], *, on: bool) -> None:
    """Put the feature on or off as an account manager would (the database bumps the
    definitions version; every worker reloads on its next postback)."""
    from offers.models import Offer

    if feature == "rules":
        offers = list(Offer.objects.filter(advertiser=defs["advertiser"]))
        bench.set_rules(offers, defs["advertiser"], on=on)
    else:
        bench.publisher_postbacks(defs, enabled=on)


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    return statistics.median(with_ / without for without, with_ in pairs)


def report(args: argparse.Namespace, measured: dict[str, list[dict]], header: str) -> str:
    lines = [
        header,
        "",
        "| path | without, req/s (median) | with, req/s (median) | with ÷ without, each pair "
        "| median ratio | cost | check |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for name, runs in measured.items():
        without = [r for r in runs if not r["on"]]
        with_ = [r for r in runs if r["on"]]
        pairs = [
            (a["rps"], b["rps"])
            for a, b in zip(
                sorted(without, key=lambda r: r["pair"]),
                sorted(with_, key=lambda r: r["pair"]),
                strict=True,
            )
        ]
        ratio = median_ratio(pairs)
        ok = all(r["ok"] for r in runs)
        lines.append(
            f"| {bench.EVENT_FORMS.get(name) or bench.CONVERSION_FORMS.get(name, name)} "
            f"| {statistics.median(r['rps'] for r in without):,.0f} "
            f"| {statistics.median(r['rps'] for r in with_):,.0f} "
            f"| {' · '.join(f'{b / a:.2f}' for a, b in pairs)} "
            f"| {ratio:.3f} | {(1 - ratio) * 100:.1f} % "
            f"| {'✓ every run' if ok else '✗ A RUN FAILED ITS CHECK (its notes say why)'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    wrk = bench.ensure_wrk()
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    env = bench.setup_django(args.database, args.db_over)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(bench.EVENT_FORMS) - set(bench.CONVERSION_FORMS)
    if unknown:
        sys.exit(f"not an accepted path of make bench: {', '.join(sorted(unknown))}")
    runs_per_path = 2 * args.pairs
    size = max(5_000, args.duration * 2_500)  # paths per run, more than a run uses
    needed = size * runs_per_path * (len(bench.EVENT_FORMS) + len(bench.STATUS_FORMS))
    defs = bench.prepare(
        args.clicks,
        converted=min(needed, args.clicks // 2),
        fresh=size * runs_per_path * len(bench.CONVERSION_FORMS),
    )
    switch(args.feature, defs, on=False)
    paths = {
        name: files
        for name, _, files, _ in bench.scenarios(defs, size=size, rounds=runs_per_path)
        if name in names or name == "healthz"
    }
    checks = {"conversion": "conversions", "conversion-global": "conversions"}
    started = time.gmtime()
    server = bench.start_server(env, args)
    measured: dict[str, list[dict]] = {name: [] for name in names}
    try:
        bench.run_wrk(wrk, args, paths["healthz"][0], 2)  # warm every worker
        for pair in range(args.pairs):
            for name in names:
                # A path's two runs back to back, without–with, then with–without in the
                # next pair: a drifting machine weighs on both alike.
                for n, on in enumerate((False, True) if pair % 2 == 0 else (True, False)):
                    switch(args.feature, defs, on=on)
                    bench.settle()
                    check = checks.get(name, "eventrecords")
                    result = bench.measure(wrk, args, name, paths[name][2 * pair + n], check)
                    result |= {"pair": pair, "on": on}
                    bench.report_run(pair, f"{name} {'with' if on else 'w/o'}", result)
                    measured[name].append(result)
    finally:
        switch(args.feature, defs, on=False)
        server.terminate()
        server.wait(timeout=30)
    header = (
        f'`make bench-compare BENCH_ARGS="--with {args.feature}"` on '
        f"{os.cpu_count()} cores, {bench.count('tracking_click'):,} clicks, wrk "
        f"-t{args.wrk_threads} -c{args.connections} -d{args.duration}s, {args.pairs} pairs "
        f"in one server (gunicorn config/gunicorn.py), started "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', started)}. With: {WHAT[args.feature]}. "
        f"Target: a cost of at most {TARGET:.0%}."
    )
    table = report(args, measured, header)
    print("\n" + table)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (bench.RESULTS / f"compare-{args.feature}-{stamp}.json").write_text(
        json.dumps(
            {
                name: [
                    {k: r[k] for k in ("pair", "on", "rps", "p50", "p99", "statuses", "ok")}
                    for r in runs
                ]
                for name, runs in measured.items()
            },
            indent=2,
        )
    )
    if args.write_docs:
        marker = f"compare-{args.feature}"
        write_between_markers(f"<!-- {marker}:start -->", f"<!-- {marker}:end -->", table)


if __name__ == "__main__":
    main()
