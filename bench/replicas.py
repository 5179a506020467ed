"""Replica throughput: 1, 2 and 3 `backfill` processes on one PostgreSQL, engine-bound (no API limit) and API-bound.

Each configuration gets a fresh database and a fresh HubSpot sandbox (in this process, on loopback); the replicas
are real OS processes (`python -m bench.replicas --worker ...`) sharing the poll lease, outbox claims, routing
counters and the account's rate limiter through the store. Needs PostgreSQL: --db or CONNECTOR_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
REPS = ["ava.sales@example-corp.test", "ben.sales@example-corp.test", "dee.sales@example-corp.test", "eli.sales@example-corp.test"]
ROUTING: dict[str, Any] = {
    "when_unavailable": "fallback", "account_matching": False, "contact_matching": False,
    "reps": [{"email": e} for e in REPS],
    "pools": {p: {"reps": REPS, "strategy": "round_robin", "weight_by_conversion": False}
              for p in ("smb", "enterprise", "emea", "apac", "partners")},
    "rules": [{"name": "everyone", "pool": "smb"}], "fallback_pool": "smb", "experiments": [],
}


def worker(config: dict[str, Any]) -> int:
    """One replica: resume the backfill (or wait while another replica polls) until it is complete and the outbox empty."""
    from connector.core.clock import SystemClock
    from connector.config import example_config_path, load_settings
    from connector.runners.jobs import backfill, make_adapters
    from connector.runners.leases import Replica
    from connector.pipeline.stages import write
    from connector.state.ratelimit import guard_factory
    from connector.state.store import Store

    settings = load_settings(example_config_path(), config["overrides"])
    logging.getLogger("connector").setLevel(logging.ERROR)  # replicas taking turns is the point, not news
    clock = SystemClock()
    replica = Replica(lease_seconds=5.0)
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        while True:
            if store.get_cursor("hubspot", "contacts", "all") == "":
                if not store.count_pending_outbox().get("hubspot"):
                    return 0
                write(store, adapters["hubspot"], clock.now(), worker=replica.worker, lease_seconds=replica.lease_seconds)
            else:
                summary = backfill(settings, store, adapters, clock, replica=replica, restart_completed=False)
                if summary.aborted:
                    print(summary.aborted, file=sys.stderr)
                    return 1
                if not summary.held_elsewhere:
                    continue
            time.sleep(0.25)  # another replica polls; try again shortly


def measure(db_admin: str, leads: int, replicas: int, limit: int | None) -> float:
    """Seconds for `replicas` processes to back-fill `leads` leads (limit: calls per 10 s, None = unlimited)."""
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
            overrides = {
                "store": {"url": url}, "routing": ROUTING, "logging": {"level": "ERROR"},
                "hubspot": {"enabled": True, "base_url": sb.base_url, "access_token": sb.token, "safety_lag_seconds": 0,
                            "requests_per_10s": limit or 1000},
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
            started = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-m", "bench.replicas", "--worker", json.dumps({"overrides": overrides})],
                                      cwd=ROOT, env=env) for _ in range(replicas)]
            codes = [p.wait() for p in procs]
            seconds = time.perf_counter() - started
            if any(codes):
                raise RuntimeError(f"a replica failed: exit codes {codes}")
            return seconds
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def run(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench replicas")
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=15, help="API-bound run: calls per 10 s for the account")
    parser.add_argument("--db", default=os.environ.get("CONNECTOR_TEST_DATABASE_URL"), help="PostgreSQL admin URL")
    args = parser.parse_args(argv)
    if not args.db:
        print("bench replicas needs PostgreSQL: --db postgresql+psycopg://USER@HOST/DB or CONNECTOR_TEST_DATABASE_URL", file=sys.stderr)
        return {}
    figures: dict[str, float] = {}
    table = Table(title=f"backfill of {args.leads} leads, leads/s (replica processes start included)")
    table.add_column("replicas", justify="right")
    table.add_column("engine-bound (no API limit)", justify="right")
    table.add_column(f"API-bound ({args.limit} calls / 10 s)", justify="right")
    for n in (1, 2, 3):
        free = args.leads / measure(args.db, args.leads, n, None)
        bound = args.leads / measure(args.db, args.leads, n, args.limit)
        figures[f"engine_bound_{n}_leads_per_s"] = round(free, 1)
        figures[f"api_bound_{n}_leads_per_s"] = round(bound, 1)
        table.add_row(str(n), f"{free:,.0f}", f"{bound:,.0f}")
    Console().print(table)
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(json.loads(sys.argv[2])))
    run(sys.argv[1:])
