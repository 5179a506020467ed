"""Throughput at the API ceiling: `connector backfill` (or `sync --once`) as a new process against a sandbox
limited to R requests per 10 s with 80 ± 20 ms of network latency per request; achieved / ceiling, 429s,
the busiest 10 s window, and the naive one-call-per-lead peer measured in the same run."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import bench_settings, connection_overrides, machine, max_in_window, pass_mark, print_table, sandbox_process
from connector.config import example_config_path

LIST_PAGE = 100  # list GET, 100 per page [crm-behaviour: HubSpot list pages hold at most 100 records]
BATCH = 100  # batch/update, 100 inputs [crm-behaviour: HubSpot batch calls take at most 100 inputs]
SEARCH_PAGE = 200  # search, 200 per page [crm-behaviour: HubSpot search: 10,000 results per query]
WINDOW_SECONDS = 10.0  # HubSpot's burst window [crm-behaviour: HubSpot rate limits: burst and daily]
TARGET = 0.90
TARGET_SMALL = 0.85  # 10,000 leads: start-up weighs more
SMALL = 10_000
SALESFORCE_TARGET_LEADS_PER_S = 950.0  # no burst limit: the pipeline's own speed against HubSpot's ceiling
SEARCH_PATH_SUFFIX = "/search"  # own per-second limit, not in the burst [crm-behaviour: HubSpot search has its own rate limit]


def minimum_calls(leads: int) -> int:
    """Burst-limited calls a backfill of `leads` cannot do without: one list page and one batch update per 100."""
    return math.ceil(leads / LIST_PAGE) + math.ceil(leads / BATCH)


def ceiling_seconds(crm: str, mode: str, leads: int, rate: int, search_rate: int) -> float:
    """The least time the CRM's limits allow: burst-counted calls at R / 10 per second (backfill); for a sync the
    slower of searches at `search_rate` per second and writes at R / 10; Salesforce: the 950 leads/s target."""
    if crm == "salesforce":
        return leads / SALESFORCE_TARGET_LEADS_PER_S
    if mode == "sync":
        return max(math.ceil(leads / SEARCH_PAGE) / search_rate, math.ceil(leads / BATCH) / (rate / WINDOW_SECONDS))
    return minimum_calls(leads) / (rate / WINDOW_SECONDS)


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


def _salesforce_times(log: Sequence[Sequence[Any]]) -> tuple[list[float], int]:
    """Salesforce's request log, (method, path, label, status) per request: its calls (no times: no burst limit) and 429s."""
    return [0.0] * len(log), sum(1 for entry in log if int(entry[3]) == 429)


def toml_with(base: str, overrides: Mapping[str, Mapping[str, Any]]) -> str:
    """The TOML text `base` with `overrides` (section -> key -> value) set: each key's own line replaced, or added
    right under its section header (a section missing from `base` is appended)."""
    lines = base.splitlines()
    for section, values in overrides.items():
        header = f"[{section}]"
        if header not in (line.strip() for line in lines):
            lines += ["", header]
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        keys = set(values)
        kept = [line for line in lines[start + 1 : end] if not any(re.match(rf"\s*{re.escape(k)}\s*=", line) for k in keys)]
        lines[start + 1 : end] = [f"{k} = {_toml_value(v)}" for k, v in values.items()] + kept
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


@contextmanager
def fresh_store(store_url: str | None, tmp: Path) -> Iterator[str]:
    """An empty state store for one measurement: an SQLite file in `tmp`, or a new database on the PostgreSQL
    server of `store_url` (dropped afterwards), so each run backfills from nothing."""
    if not store_url:
        yield f"sqlite:///{tmp / 'ceiling-state.db'}"
        return
    import sqlalchemy as sa

    url = sa.make_url(store_url)
    name = f"bench_ceiling_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def child_config(args: argparse.Namespace, info: Mapping[str, Any], store_url: str) -> dict[str, dict[str, Any]]:
    """The config sections the `connector` child runs with: the example config pointed at the sandbox."""
    other = "salesforce" if args.crm == "hubspot" else "hubspot"
    crm = dict(connection_overrides(args.crm, info, daily_limit=10_000_000))
    if args.crm == "hubspot":
        crm.update(requests_per_10s=args.rate, search_requests_per_second=args.search_rate)
    else:
        crm.update(daily_api_limit=10_000_000)
        crm.pop("daily_limit")
    sync: dict[str, Any] = {}
    if args.read_ahead_pages is not None:
        sync["read_ahead_pages"] = args.read_ahead_pages
    if args.writes_in_flight is not None:
        sync["writes_in_flight"] = args.writes_in_flight
    sections = {
        args.crm: crm, other: {"enabled": False}, "store": {"url": store_url},
        "logging": {"level": "ERROR", "as_json": False},
        "routing": {"when_unavailable": "fallback", "account_matching": args.account_matching},
    }
    return {**sections, **({"sync": sync} if sync else {})}


def run_child(command: str, config: Path) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds, --json summary) of `connector <command> --json` as a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["CONNECTOR_CONFIG"] = str(config)
    script = Path(sys.executable).with_name("connector")
    exe = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from connector.cli import main; sys.exit(main())"]
    argv = [*exe, *command.split(), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"connector {command} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, json.loads(done.stdout)


def measure(args: argparse.Namespace, leads: int) -> tuple[dict[str, float], dict[str, int]]:
    """One size: sandbox in its own process, `connector backfill` (or `sync --once`) as another; the figures."""
    command = "backfill" if args.mode == "backfill" else "sync --once"
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp, fresh_store(args.store_url, Path(tmp)) as store_url, \
            sandbox_process(args.crm, leads, requests_per_10s=args.rate if args.crm == "hubspot" else None,
                            search_per_second=args.search_rate if args.crm == "hubspot" else None,
                            latency_ms=args.latency_ms, jitter_ms=args.jitter_ms) as sandbox:
        config = Path(tmp) / "ceiling.toml"
        base = example_config_path().read_text(encoding="utf-8")
        config.write_text(toml_with(base, child_config(args, sandbox.info, store_url)), encoding="utf-8")
        sandbox.ask("reset")
        launched = time.monotonic()  # the sandbox logs CLOCK_MONOTONIC too: one time line across the processes
        seconds, cpu, summary = run_child(command, config)
        stats = sandbox.ask("stats")
    # Only the HubSpot sandbox stamps its log (Salesforce's has no burst limit to check, so no times).
    served = sorted(float(entry[0]) for entry in stats["log"]) if args.crm == "hubspot" else []
    times, throttled = burst_times(stats["log"]) if args.crm == "hubspot" else _salesforce_times(stats["log"])
    accepted = burst_times(stats["log"], accepted_only=True)[0] if args.crm == "hubspot" else times
    least = ceiling_seconds(args.crm, args.mode, leads, args.rate, args.search_rate)
    achieved = leads / seconds if seconds else 0.0
    figures = {
        "leads": float(leads), "seconds": seconds, "cpu_seconds": cpu, "ceiling_seconds": least,
        "leads_per_second": achieved, "ceiling_leads_per_second": leads / least,
        "achieved_vs_ceiling": achieved / (leads / least),
        "burst_calls": float(len(times)), "minimum_calls": float(minimum_calls(leads)),
        "max_calls_in_10s": float(max_in_window(times, WINDOW_SECONDS)),
        "max_accepted_in_10s": float(max_in_window(accepted, WINDOW_SECONDS)),
        "http_429": float(throttled), "written": float(summary.get("written", 0)),
        "fetched": float(summary.get("fetched", 0)),
        # Where the wall time goes outside the calls: process start-up (imports, config, store) before the first
        # request reached the CRM, and the exit after the last one.
        "first_call_after_seconds": served[0] - launched if served else 0.0,
        "exit_after_last_call_seconds": launched + seconds - served[-1] if served else 0.0,
    }
    return figures, dict(stats["calls"])


def naive_peer(args: argparse.Namespace) -> tuple[int, float]:
    """(leads, seconds) of the one-call-per-lead peer (bench/calls.py) at the same latency, in this process."""
    from bench.calls import naive_hubspot, naive_salesforce

    n = args.naive_leads
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        if args.crm == "hubspot":
            from connector.sandbox.hubspot import HubSpotSandbox

            with HubSpotSandbox(contacts=n) as hs:
                hs.requests_per_10s, hs.search_rate_per_second = args.rate, args.search_rate
                hs.latency_seconds, hs.latency_jitter_seconds = args.latency_ms / 1000, args.jitter_ms / 1000
                settings = bench_settings(Path(tmp), hubspot=connection_overrides("hubspot", {"base_url": hs.base_url, "token": hs.token}))
                _bootstrap(settings, "hubspot")  # the connector's properties exist, as after a first run
                done, _calls, seconds = naive_hubspot(hs, settings, n)
            return done, seconds
        return _naive_salesforce(args, Path(tmp), naive_salesforce)


def _bootstrap(settings: Any, crm: str) -> Any:
    from connector.core.clock import SystemClock
    from connector.runners.jobs import make_adapters

    adapter = make_adapters(settings, clock=SystemClock())[crm]
    adapter.bootstrap()
    return adapter


def _naive_salesforce(args: argparse.Namespace, tmp: Path, naive: Callable[..., tuple[int, int, float]]) -> tuple[int, float]:
    from connector.sandbox.salesforce import SalesforceSandbox

    with SalesforceSandbox(leads=args.naive_leads) as sf:
        sf.daily_api_limit = 10_000_000
        sf.latency_seconds, sf.latency_jitter_seconds = args.latency_ms / 1000, args.jitter_ms / 1000
        info = {"instance_url": sf.instance_url, "client_id": sf.client_id, "client_secret": sf.client_secret, "ca_file": sf.ca_file}
        settings = bench_settings(tmp, salesforce=connection_overrides("salesforce", info))
        adapter = _bootstrap(settings, "salesforce")
        done, _calls, seconds = naive(sf, settings, adapter.session(), args.naive_leads)
    return done, seconds


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ceiling", description=__doc__)
    parser.add_argument("--crm", choices=("hubspot", "salesforce"), default="hubspot")
    parser.add_argument("--mode", choices=("backfill", "sync"), default="backfill",
                        help="backfill (list pages) or the first `sync --once` (every lead a change, read through search)")
    parser.add_argument("--leads", type=int, default=100_000, help="sandbox leads (default 100,000)")
    parser.add_argument("--sizes", default=None, help="several sizes in one run, e.g. 10000,100000 (overrides --leads)")
    parser.add_argument("--rate", type=int, default=190, help="R: requests per 10 s at the sandbox and in [hubspot] requests_per_10s")
    parser.add_argument("--search-rate", type=int, default=5, help="search requests per second (sandbox and connector; HubSpot's 5)")
    parser.add_argument("--latency-ms", type=float, default=80.0, help="network latency of every request (default 80)")
    parser.add_argument("--jitter-ms", type=float, default=20.0, help="± uniform jitter on the latency (default 20)")
    parser.add_argument("--naive-leads", type=int, default=100, help="leads the one-call-per-lead peer writes (default 100)")
    parser.add_argument("--account-matching", action="store_true",
                        help="keep [routing] account_matching on (adds lookups; the ceiling still counts only lead calls)")
    parser.add_argument("--store-url", default=None, help="PostgreSQL server to measure on (a fresh database per run); default SQLite")
    parser.add_argument("--read-ahead-pages", type=int, default=None, help="[sync] read_ahead_pages for the child (default: config's)")
    parser.add_argument("--writes-in-flight", type=int, default=None, help="[sync] writes_in_flight for the child (default: config's)")
    return parser.parse_args(argv)


def run(argv: list[str]) -> dict[str, float]:
    """`python -m bench ceiling [--crm hubspot|salesforce] [--mode backfill|sync] [--leads N | --sizes A,B] [--rate R] ...`."""
    args = parse(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.leads]
    naive_leads, naive_seconds = naive_peer(args) if args.naive_leads > 0 else (0, 0.0)
    naive_rate = naive_leads / naive_seconds if naive_seconds else 0.0
    out: dict[str, float] = {"naive_leads_per_second": naive_rate}
    for leads in sizes:
        figures, calls = measure(args, leads)
        figures["vs_naive"] = figures["leads_per_second"] / naive_rate if naive_rate else 0.0
        _print(figures, calls, args, naive_rate)
        prefix = "" if len(sizes) == 1 else f"{leads}."
        out.update({f"{prefix}{k}": v for k, v in figures.items()})
    return out


def _print(f: dict[str, float], calls: dict[str, int], args: argparse.Namespace, naive_rate: float) -> None:
    ok: Callable[[bool], str] = pass_mark
    hubspot = args.crm == "hubspot"
    target = (TARGET_SMALL if f["leads"] <= SMALL else TARGET) if hubspot else 1.0
    limit = f"R = {args.rate} / 10 s" + (f", search {args.search_rate}/s" if args.mode == "sync" else "") if hubspot else "no burst limit"
    ceiling_note = (f"{f['ceiling_leads_per_second']:.0f} leads/s at the limits" if hubspot
                    else f"target {SALESFORCE_TARGET_LEADS_PER_S:.0f} leads/s")
    rows = [
        ("leads", f"{int(f['leads'])}", f"fetched {int(f['fetched'])}, written {int(f['written'])}"),
        ("limits", limit, f"latency {args.latency_ms:g} ± {args.jitter_ms:g} ms per request"),
        ("ceiling", f"{f['ceiling_seconds']:.1f} s", ceiling_note),
        ("achieved", f"{f['seconds']:.1f} s", f"{f['leads_per_second']:.0f} leads/s, new process, start-up included "
                                              f"(child CPU {f['cpu_seconds']:.1f} s)"),
        *([("start-up, exit", f"{f['first_call_after_seconds']:.2f} s, {f['exit_after_last_call_seconds']:.2f} s",
            "process start → first request at the CRM; last request → exit")] if args.crm == "hubspot" else []),
        ("achieved / ceiling", f"{f['achieved_vs_ceiling']:.3f}", f"≥ {target:.2f}: {ok(f['achieved_vs_ceiling'] >= target)}"),
        ("naive peer", f"{naive_rate:.1f} leads/s", f"one call per lead, same latency; ours {f['vs_naive']:.0f}× faster"),
        ("HTTP 429 answers", f"{int(f['http_429'])}", f"0: {ok(f['http_429'] == 0)}"),
    ]
    if hubspot:
        rows += [
            ("burst calls sent", f"{int(f['burst_calls'])}", f"minimum {int(f['minimum_calls'])} for a backfill"),
            ("busiest 10 s, sent", f"{int(f['max_calls_in_10s'])}", f"≤ R: {ok(f['max_calls_in_10s'] <= args.rate)} (429s included)"),
            ("busiest 10 s, served", f"{int(f['max_accepted_in_10s'])}", f"≤ R: {ok(f['max_accepted_in_10s'] <= args.rate)}"),
        ]
    rows.append(("calls by endpoint", "", str(dict(sorted(calls.items())))))
    print_table(f"ceiling: {args.crm} {args.mode} of {int(f['leads'])} leads, store {'PostgreSQL' if args.store_url else 'SQLite'}", rows)
    m = machine()
    load = os.getloadavg()
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
