"""Fault-suite fixtures: a fresh PostgreSQL database per test, settings for the sandboxes, and replica processes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
# Four reps without office hours or capacities, one round-robin pool: fairness is then exact (±1).
REPS = ["ava.sales@example-corp.test", "ben.sales@example-corp.test", "dee.sales@example-corp.test", "eli.sales@example-corp.test"]
ROUTING: dict[str, Any] = {
    "when_unavailable": "fallback",
    "account_matching": False,
    "contact_matching": False,
    "reps": [{"email": e} for e in REPS],
    "pools": {p: {"reps": REPS, "strategy": "round_robin", "weight_by_conversion": False}
              for p in ("smb", "enterprise", "emea", "apac", "partners")},
    "rules": [{"name": "everyone", "pool": "smb"}],
    "fallback_pool": "smb",
    "experiments": [],
}
WAIT = 120.0


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (skips with the standard reason without CONNECTOR_TEST_DATABASE_URL)."""
    name = f"f_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def hubspot_overrides(store_url: str, base_url: str, token: str, **hubspot: Any) -> dict[str, Any]:
    return {
        "store": {"url": store_url},
        "hubspot": {"enabled": True, "base_url": base_url, "access_token": token, "safety_lag_seconds": 0, **hubspot},
        "routing": ROUTING,
        "logging": {"level": "ERROR"},
    }


class Replicas:
    """Worker processes (tests/faults/worker.py) and their JSON lines, merged into one queue."""

    def __init__(self, config: dict[str, Any], logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.procs: list[subprocess.Popen[str]] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.killed: list[int] = []
        self._readers: list[threading.Thread] = []

    def spawn(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        with open(self.logs / f"worker-{len(self.procs)}.log", "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.worker", json.dumps(self.config)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        reader.start()
        self.procs.append(proc)
        self._readers.append(reader)
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            event["pid"] = proc.pid
            self.events.put(event)
        self.events.put({"event": "exit", "pid": proc.pid})

    def next_event(self) -> dict[str, Any]:
        return self.events.get(timeout=WAIT)

    def kill(self, pid: int) -> None:
        """kill -9: no shutdown code runs; claims and leases stay until they expire."""
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)

    def live(self) -> list[subprocess.Popen[str]]:
        return [p for p in self.procs if p.poll() is None]

    def wait_all(self) -> list[int]:
        return [p.wait(timeout=WAIT) for p in self.procs if p.pid not in self.killed]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
