"""`connector serve` as a real process: it finishes intake left by a killed predecessor, serves, and on SIGTERM
drains and exits 0 within [service] grace_seconds."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.config import example_config_path
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import IntakeRequest, Store

from .conftest import APP_ID, CLIENT_SECRET, EVENTS_SECRET, START, basic

GRACE_SECONDS = 3
WAIT = 30.0


class Logs:
    """The process's JSON log lines (stderr), read by a thread so the test can wait for one without blocking forever."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            try:
                self.lines.put(json.loads(raw))
            except json.JSONDecodeError:
                self.lines.put({"msg": raw.strip()})

    def wait_for(self, text: str) -> dict[str, Any]:
        while True:
            line = self.lines.get(timeout=WAIT)
            self.seen.append(line)
            if text in str(line.get("msg", "")):
                return line


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=10) as sb:
        yield sb


def test_serve_finishes_left_over_intake_and_drains_on_sigterm(tmp_path: Path, sandbox: HubSpotSandbox) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    ids = sorted(sandbox.records_ids("contacts"), key=int)[:2]
    with Store.open(store_url) as store:
        # Accepted (2xx sent) by an instance that was then killed before its worker ran.
        store.add_intake([IntakeRequest("hubspot", "contacts", "record", rid, None, "webhook", "from-before") for rid in ids], START)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")},
        "CONNECTOR_STORE__URL": store_url,
        "CONNECTOR_HUBSPOT__ENABLED": "true",
        "CONNECTOR_HUBSPOT__BASE_URL": sandbox.base_url,
        "CONNECTOR_HUBSPOT__ACCESS_TOKEN": sandbox.token,
        "CONNECTOR_HUBSPOT__CLIENT_SECRET": CLIENT_SECRET,
        "CONNECTOR_HUBSPOT__APP_ID": APP_ID,
        "CONNECTOR_SERVICE__EVENTS_SECRET": EVENTS_SECRET,
        "CONNECTOR_SERVICE__POLL": "false",
        "CONNECTOR_SERVICE__GRACE_SECONDS": str(GRACE_SECONDS),
        "CONNECTOR_LOGGING__AS_JSON": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--config", str(example_config_path())],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[3],
    )
    logs = Logs(process.stderr)
    try:
        port = logs.wait_for("listening on")["port"]
        batch = logs.wait_for("intake batch processed")
        assert batch["rows"] == 2 and batch["correlation_ids"] == ["from-before"]
        url = f"http://127.0.0.1:{port}"
        ready = requests.get(f"{url}/readyz", timeout=10, headers={"X-Request-ID": "probe-1"})
        assert ready.status_code == 200
        # Structured JSON logs, one line per request, with its correlation id.
        line = logs.wait_for("request")
        assert (line["path"], line["status"], line["correlation_id"]) == ("/readyz", 200, "probe-1")
        accepted = requests.post(
            f"{url}/events", timeout=10, headers={"Authorization": basic(EVENTS_SECRET)},
            json={"type": "track", "event": "Demo Requested", "userId": f"hubspot:contacts:{ids[0]}", "timestamp": "2026-11-23T09:00:00Z"},
        )
        assert accepted.status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=GRACE_SECONDS + 1) == 0
        logs.wait_for("draining")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        logs.reader.join(WAIT)
        assert process.stderr is not None
        process.stderr.close()
    with Store.open(store_url) as store:
        rows = store.intake_rows()
    # The left-over work was finished; the re-score accepted just before SIGTERM was either done or left
    # durably pending for the next start (never lost).
    assert [r["status"] for r in rows[:2]] == ["done", "done"]
    assert rows[2]["kind"] == "record" and rows[2]["status"] in ("done", "pending")
    for rid in ids:
        assert (sandbox.get_record("contacts", rid) or {}).get("connector_lead_score") not in (None, "")
