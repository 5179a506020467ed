"""Replica throughput: 1, 2 and 3 `backfill` processes on one PostgreSQL, engine-bound (no API limit) and API-bound.

Each configuration gets a fresh database and a fresh HubSpot sandbox (in this process, on loopback); the replicas
are real OS processes (`python -m bench.replicas --worker ...`) sharing the poll lease, outbox claims, routing
counters and the account's rate limiter through the store. Needs PostgreSQL: --db or CONNECTOR_TEST_DATABASE_URL.

Leads/s run from starting the processes (imports and start-up included) to the last lead write answered by the
sandbox; the time until the last process exited is reported beside it. Each configuration also reports what
coordination costs: the PostgreSQL round trips per lead (counted in every replica: statements, transactions,
connection checkouts; and the server's own transaction count for the database), the API calls each replica
spends before its first lead (owners, fields), the busiest 10 s window and the 429s at the sandbox.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from bench.harness import max_in_window

ROOT = Path(__file__).resolve().parents[1]
REPS = ["ava.sales@example-corp.test", "ben.sales@example-corp.test", "dee.sales@example-corp.test", "eli.sales@example-corp.test"]
ROUTING: dict[str, Any] = {
    "when_unavailable": "fallback", "account_matching": False, "contact_matching": False,
    "reps": [{"email": e} for e in REPS],
    "pools": {p: {"reps": REPS, "strategy": "round_robin", "weight_by_conversion": False}
              for p in ("smb", "enterprise", "emea", "apac", "partners")},
    "rules": [{"name": "everyone", "pool": "smb"}], "fallback_pool": "smb", "experiments": [],
}
# Lead calls (list pages and batch updates) move leads; every other call a replica makes is start-up (owners, fields).
LEAD_ENDPOINTS = ("contacts.list", "contacts.batch_update")
WRITE_PATH = "/crm/v3/objects/contacts/batch/update"
WINDOW_SECONDS = 10.0
# What each statement coordinates, by its verb and table (RoundTrips.by_kind); the rest is the pipeline's own work.
COORDINATION = {
    "limiter + budget": ("rate_limits", "daily_budgets"),
    "leases + clock": ("leases", "clock_timestamp()"),
    "outbox claims, fences, counts": ("WITH outbox", "UPDATE outbox", "SELECT outbox"),
    "routing locks": ("routing_locks",),
}
TARGET_ENGINE_RATIO = 1.0  # 3 replicas vs 1, no API limit
TARGET_API_RATIO = 0.9  # 3 replicas vs 1, at the account's limit


def worker(config: dict[str, Any]) -> int:
    """One replica: resume the backfill, or help the replica that polls, until it is complete and the outbox empty.

    Prints one JSON line: its round trips to PostgreSQL and its API calls by endpoint.
    """
    from connector.core.clock import SystemClock
    from connector.config import example_config_path, load_settings
    from connector.pipeline.stages import write
    from connector.runners.jobs import backfill, diff_rules, make_adapters
    from connector.runners.leases import Replica
    from connector.state.ratelimit import guard_factory
    from connector.state.store import Store

    settings = load_settings(example_config_path(), config["overrides"])
    logging.getLogger("connector").setLevel(logging.ERROR)  # replicas taking turns is the point, not news
    clock = SystemClock()
    replica = Replica(lease_seconds=5.0)
    with Store.open(settings.store.url) as store, store.round_trips() as trips:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        adapter = adapters["hubspot"]
        # `connector backfill --join`: the replica that takes the poll lease reads and routes; the others send the
        # writes it queues until the backfill is complete (and take it over if it stops).
        summary = backfill(settings, store, adapters, clock, replica=replica, restart_completed=False, join=True)
        if summary.aborted:
            print(summary.aborted, file=sys.stderr)
            return 1
        polled, helped = summary.fetched, summary.written if not summary.fetched else 0
        while store.count_pending_outbox().get("hubspot"):
            sent = len(write(store, adapter, clock.now(), worker=replica.worker, lease_seconds=replica.lease_seconds,
                             person_wins=diff_rules(settings, "hubspot").person_wins, clock=clock))
            helped += sent
            if not sent:
                clock.sleep(0.1)  # the rest is claimed by another replica (or waits for a retry)
        calls = dict(adapter.calls.snapshot())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"db": trips.as_dict(), "kinds": dict(trips.by_kind), "calls": calls, "polled": polled, "helped": helped,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}), flush=True)
    return 0


def _server_transactions(engine: sa.Engine, name: str) -> int:
    """Transactions PostgreSQL counted for the database (its own statistics, every replica's connection)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(sa.text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :n"), {"n": name}).first()
    return int(row[0]) if row is not None else 0


def measure(db_admin: str, leads: int, replicas: int, limit: int | None) -> dict[str, Any]:
    """`replicas` processes back-fill `leads` leads (limit: calls per 10 s, None = unlimited): seconds and costs."""
    from connector.sandbox.hubspot import HubSpotSandbox
    from connector.state.store import Store

    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(db_admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(db_admin).set(database=name).render_as_string(hide_password=False)
    try:
        with HubSpotSandbox(seed=11, contacts=leads, companies=20, leads=0) as sb:
            sb.requests_per_10s = limit
            Store.open(url).close()
            xacts_before = _server_transactions(engine, name)
            overrides = {
                "store": {"url": url}, "routing": ROUTING, "logging": {"level": "ERROR"},
                "hubspot": {"enabled": True, "base_url": sb.base_url, "access_token": sb.token, "safety_lag_seconds": 0,
                            "requests_per_10s": limit or 1000},
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
            log_start = len(sb.request_log)
            started = time.monotonic()  # the sandbox stamps its request log on the same monotonic clock
            procs = [subprocess.Popen([sys.executable, "-m", "bench.replicas", "--worker", json.dumps({"overrides": overrides})],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(replicas)]
            outs = [p.communicate()[0] for p in procs]
            seconds = time.monotonic() - started
            if any(p.returncode for p in procs):
                raise RuntimeError(f"a replica failed: exit codes {[p.returncode for p in procs]}")
            reports = [json.loads(out.strip().splitlines()[-1]) for out in outs]
            log = list(sb.request_log)[log_start:]
        time.sleep(0.5)  # the replicas' backends have exited; their statistics reach pg_stat_database
        xacts = _server_transactions(engine, name) - xacts_before
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    return _costs(leads, seconds, reports, [(float(entry[0]) - started, *entry[1:]) for entry in log], xacts)


def _costs(leads: int, seconds: float, reports: list[dict[str, Any]], log: list[Any], xacts: int) -> dict[str, Any]:
    """Figures of one configuration; `log` is the sandbox's request log with times in seconds since the start."""
    reports = sorted(reports, key=lambda r: -int(r["polled"]))  # the replica that polled first, then its helpers
    db: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for r in reports:
        db.update(r["db"])
        kinds.update(r["kinds"])
    by_part = {part: sum(n for kind, n in kinds.items() if any(kind.endswith(t) or kind == t for t in tables)) / leads
               for part, tables in COORDINATION.items()}
    startup = [sum(n for endpoint, n in r["calls"].items() if endpoint not in LEAD_ENDPOINTS) for r in reports]
    burst = sorted(float(entry[0]) for entry in log if not str(entry[2]).endswith("/search"))
    # Done = the last lead write answered at the CRM: a replica noticing afterwards that there is nothing left
    # to do (a helper's next look) is not throughput.
    done = max((float(entry[0]) for entry in log if str(entry[2]).endswith(WRITE_PATH) and int(entry[3]) < 400), default=seconds)
    return {
        "seconds": done, "leads_per_s": leads / done, "exit_seconds": seconds,
        "round_trips_per_lead": db["round_trips"] / leads, "statements_per_lead": db["statements"] / leads,
        "transactions_per_lead": db["transactions"] / leads, "server_transactions_per_lead": xacts / leads,
        "statements_per_lead_by_part": by_part, "startup_calls": startup, "calls": len(log), "http_429": sum(1 for entry in log if int(entry[3]) == 429),
        "busiest_10s": max_in_window(burst, WINDOW_SECONDS), "helped_writes": sum(int(r["helped"]) for r in reports),
        # CPU seconds of the poller, then of the others (start-up, waiting, helping)
        "cpu_seconds": [r["cpu_seconds"] for r in reports],
    }


def run(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench replicas")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=190, help="API-bound run: calls per 10 s for the account (HubSpot's 190)")
    parser.add_argument("--db", default=os.environ.get("CONNECTOR_TEST_DATABASE_URL"), help="PostgreSQL admin URL")
    parser.add_argument("--replicas", default="1,2,3", help="replica counts to measure (default 1,2,3)")
    args = parser.parse_args(argv)
    if not args.db:
        print("bench replicas needs PostgreSQL: --db postgresql+psycopg://USER@HOST/DB or CONNECTOR_TEST_DATABASE_URL", file=sys.stderr)
        return {}
    counts = [int(n) for n in args.replicas.split(",")]
    figures: dict[str, float] = {"leads": float(args.leads), "limit_per_10s": float(args.limit)}
    table = Table(title=f"backfill of {args.leads:,} leads by N replica processes on one PostgreSQL (start-up included)")
    for column in ("replicas", "run", "leads/s", "vs 1 replica", "s to last write / last exit", "PG round trips / lead", "statements / lead",
                   "server xacts / lead", "start-up calls per replica", "calls", "429", "busiest 10 s", "writes sent by helpers",
                   "CPU s: poller / others"):
        table.add_column(column, justify="right")
    parts = Table(title="coordination statements per lead (all replicas; the rest of the statements is the pipeline's own)")
    for column in ("replicas", "run", *COORDINATION, "all coordination", "all statements"):
        parts.add_column(column, justify="right")
    for n in counts:
        for kind, limit in (("engine_bound", None), ("api_bound", args.limit)):
            m = measure(args.db, args.leads, n, limit)
            coordination = sum(m["statements_per_lead_by_part"].values())
            figures[f"{kind}_{n}_coordination_statements_per_lead"] = round(coordination, 3)
            figures[f"{kind}_{n}_leads_per_s"] = round(m["leads_per_s"], 1)
            figures[f"{kind}_{n}_round_trips_per_lead"] = round(m["round_trips_per_lead"], 3)
            figures[f"{kind}_{n}_statements_per_lead"] = round(m["statements_per_lead"], 3)
            figures[f"{kind}_{n}_server_transactions_per_lead"] = round(m["server_transactions_per_lead"], 3)
            figures[f"{kind}_{n}_startup_calls_per_replica"] = round(sum(m["startup_calls"]) / n, 2)
            figures[f"{kind}_{n}_http_429"] = float(m["http_429"])
            figures[f"{kind}_{n}_busiest_10s"] = float(m["busiest_10s"])
            figures[f"{kind}_{n}_cpu_seconds"] = round(sum(m["cpu_seconds"]), 2)
            figures[f"{kind}_{n}_seconds"] = round(m["seconds"], 2)
            figures[f"{kind}_{n}_exit_seconds"] = round(m["exit_seconds"], 2)
            one = figures.get(f"{kind}_1_leads_per_s")
            ratio = m["leads_per_s"] / one if one else None
            if ratio is not None and n > 1:
                figures[f"{kind}_{n}_vs_1"] = round(ratio, 3)
            run_name = "no API limit" if limit is None else f"{limit} calls / 10 s"
            table.add_row(str(n), run_name, f"{m['leads_per_s']:,.0f}", "—" if ratio is None else f"{ratio:.2f}",
                          f"{m['seconds']:.1f} / {m['exit_seconds']:.1f}",
                          f"{m['round_trips_per_lead']:.3f}", f"{m['statements_per_lead']:.3f}",
                          f"{m['server_transactions_per_lead']:.3f}", " / ".join(str(c) for c in m["startup_calls"]),
                          str(m["calls"]), str(m["http_429"]), "—" if limit is None else f"{m['busiest_10s']} (≤ {limit})",
                          str(m["helped_writes"]), " / ".join(f"{c:.1f}" for c in m["cpu_seconds"]))
            parts.add_row(str(n), run_name, *(f"{v:.3f}" for v in m["statements_per_lead_by_part"].values()),
                          f"{coordination:.3f}", f"{m['statements_per_lead']:.3f}")
    Console(width=200).print(table)
    Console(width=200).print(parts)
    _verdicts(figures, counts, args.limit)
    return figures


def _verdicts(figures: dict[str, float], counts: list[int], limit: int) -> None:
    """The targets of issue 18 against this run's figures."""
    top = max(counts)
    for kind, target in (("engine_bound", TARGET_ENGINE_RATIO), ("api_bound", TARGET_API_RATIO)):
        ratio = figures.get(f"{kind}_{top}_vs_1")
        if ratio is not None:
            print(f"{kind}: {top} replicas / 1 = {ratio:.2f} (target ≥ {target}): {'ok' if ratio >= target else 'MISSES TARGET'}")
    over = [n for n in counts if figures[f"api_bound_{n}_http_429"] or figures[f"api_bound_{n}_busiest_10s"] > limit]
    print(f"API-bound runs over the limit (a 429, or a busiest window > {limit}): {over or 'none'}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(json.loads(sys.argv[2])))
    run(sys.argv[1:])
