"""Backfill throughput against a HubSpot sandbox limited to R requests per 10 s: achieved / ceiling, 429s, busiest 10 s window."""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import bench_settings, connection_overrides, machine, max_in_window, pass_mark, print_table, sandbox_process
from connector.adapters.base import CallGuard
from connector.core.clock import SystemClock
from connector.runners.jobs import backfill, make_adapters
from connector.state.ratelimit import StoreGuard, guard_factory
from connector.state.store import Store

LIST_PAGE = 100  # list GET, 100 per page [crm-behaviour: HubSpot list pages hold at most 100 records]
BATCH = 100  # batch/update, 100 inputs [crm-behaviour: HubSpot batch calls take at most 100 inputs]
WINDOW_SECONDS = 10.0  # HubSpot's burst window [crm-behaviour: HubSpot rate limits: burst and daily]
TARGET = 0.90
SEARCH_PATH_SUFFIX = "/search"  # own per-second limit, not in the burst [crm-behaviour: HubSpot search has its own rate limit]


def minimum_calls(leads: int) -> int:
    """Burst-limited calls a backfill of `leads` cannot do without: one list page and one batch update per 100."""
    return math.ceil(leads / LIST_PAGE) + math.ceil(leads / BATCH)


def burst_times(log: Sequence[Sequence[Any]], *, accepted_only: bool = False) -> tuple[list[float], int]:
    """(sorted times of requests that count toward the burst limit, number of 429 answers) from the sandbox request log.

    accepted_only leaves out the requests the sandbox refused with 429 (they did not use the allowance).
    """
    times = sorted(
        float(t) for t, _method, path, status in log
        if not str(path).endswith(SEARCH_PATH_SUFFIX) and not (accepted_only and int(status) == 429)
    )
    throttled = sum(1 for *_rest, status in log if int(status) == 429)
    return times, throttled


def run(argv: list[str]) -> dict[str, float]:
    """`python -m bench ceiling [--leads N] [--rate R] [--account-matching] [--store-url URL]`."""
    parser = argparse.ArgumentParser(prog="python -m bench ceiling")
    parser.add_argument("--leads", type=int, default=20_000, help="sandbox leads to backfill (default 20,000)")
    parser.add_argument("--rate", type=int, default=40, help="R: requests per 10 s, at the sandbox and in [hubspot] requests_per_10s")
    parser.add_argument("--search-rate", type=int, default=5, help="search requests per second (sandbox and connector; default HubSpot's 5)")
    parser.add_argument("--account-matching", action="store_true",
                        help="keep [routing] account_matching on (adds company lookups per page; the ceiling still counts only lead calls)")
    parser.add_argument("--store-url", default=None, help="state store (default: an SQLite file in a temporary directory)")
    args = parser.parse_args(argv)
    logging.getLogger("connector.jobs").setLevel(logging.ERROR)  # the example config's deactivated rep warns every run

    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp, \
            sandbox_process("hubspot", args.leads, requests_per_10s=args.rate, search_per_second=args.search_rate) as sandbox:
        settings = bench_settings(
            Path(tmp),
            hubspot=connection_overrides("hubspot", sandbox.info, requests_per_10s=args.rate,
                                         search_requests_per_second=args.search_rate, daily_limit=10_000_000),
            store_url=args.store_url,
            routing={"account_matching": args.account_matching},
        )
        with Store.open(settings.store.url) as store:
            clock = SystemClock()
            guards: dict[str, StoreGuard] = {}
            factory = guard_factory(store, settings, clock)

            def guard_for(crm: str) -> CallGuard:
                guards[crm] = factory(crm)
                return guards[crm]

            adapters = make_adapters(settings, guard_for=guard_for, clock=clock)
            sandbox.ask("reset")
            started = time.perf_counter()
            summary = backfill(settings, store, adapters, clock)
            seconds = time.perf_counter() - started
        stats = sandbox.ask("stats")

    times, throttled = burst_times(stats["log"])
    busiest = max_in_window(times, WINDOW_SECONDS)
    busiest_accepted = max_in_window(burst_times(stats["log"], accepted_only=True)[0], WINDOW_SECONDS)
    least = minimum_calls(args.leads)
    ceiling_seconds = least / (args.rate / WINDOW_SECONDS)
    achieved = args.leads / seconds if seconds else 0.0
    ceiling = args.leads / ceiling_seconds
    burst_rate = len(times) / seconds if seconds else 0.0
    figures = {
        "leads": float(args.leads),
        "rate_per_10s": float(args.rate),
        "seconds": seconds,
        "ceiling_seconds": ceiling_seconds,
        "leads_per_second": achieved,
        "ceiling_leads_per_second": ceiling,
        "achieved_vs_ceiling": achieved / ceiling if ceiling else 0.0,
        "burst_calls": float(len(times)),
        "minimum_calls": float(least),
        "burst_calls_per_second": burst_rate,
        "call_rate_vs_limit": burst_rate / (args.rate / WINDOW_SECONDS),
        "max_calls_in_10s": float(busiest),
        "max_accepted_in_10s": float(busiest_accepted),
        "http_429": float(throttled),
        "limiter_wait_seconds": guards["hubspot"].waited_seconds if "hubspot" in guards else 0.0,
        "written": float(summary.written),
    }
    _print(figures, stats["calls"], args)
    return figures


def _print(f: dict[str, float], calls: dict[str, int], args: argparse.Namespace) -> None:
    ok: Callable[[bool], str] = pass_mark
    rows = [
        ("leads backfilled", f"{int(f['leads'])}", f"written {int(f['written'])}"),
        ("R (requests / 10 s)", f"{int(f['rate_per_10s'])}", "sandbox limit = [hubspot] requests_per_10s"),
        ("minimum burst calls", f"{int(f['minimum_calls'])}", "list 100/page + batch/update 100/call"),
        ("ceiling", f"{f['ceiling_seconds']:.1f} s", f"{f['ceiling_leads_per_second']:.0f} leads/s at R/10 calls/s"),
        ("achieved", f"{f['seconds']:.1f} s", f"{f['leads_per_second']:.0f} leads/s"),
        ("achieved / ceiling", f"{f['achieved_vs_ceiling']:.3f}", f"≥ {TARGET}: {ok(f['achieved_vs_ceiling'] >= TARGET)}"),
        ("burst calls sent", f"{int(f['burst_calls'])}", f"{f['burst_calls_per_second']:.2f}/s = {f['call_rate_vs_limit']:.3f} of R/10"),
        ("busiest 10 s window, sent", f"{int(f['max_calls_in_10s'])}", f"≤ R: {ok(f['max_calls_in_10s'] <= f['rate_per_10s'])} (429s included)"),
        ("busiest 10 s window, served", f"{int(f['max_accepted_in_10s'])}", f"≤ R: {ok(f['max_accepted_in_10s'] <= f['rate_per_10s'])}"),
        ("HTTP 429 answers", f"{int(f['http_429'])}", "few or none"),
        ("limiter waited", f"{f['limiter_wait_seconds']:.1f} s", "time the connector's own limiter held calls back"),
        ("calls by endpoint", "", str(dict(sorted(calls.items())))),
    ]
    print_table(f"ceiling: {int(f['leads'])}-lead backfill, account matching {'on' if args.account_matching else 'off'}", rows)
    m = machine()
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}", flush=True)
