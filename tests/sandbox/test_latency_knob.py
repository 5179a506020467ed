"""The latency knob on both sandboxes (with jitter), concurrent serving, and limits that stay exact under it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import pytest

from connector.core.clock import FrozenClock
from connector.sandbox import _http
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_every_request_waits_latency_plus_minus_jitter(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_http.time, "sleep", slept.append)
    sandbox = HubSpotSandbox(contacts=3, clock=FrozenClock(NOW)) if crm == "hubspot" else SalesforceSandbox(leads=3, clock=FrozenClock(NOW))
    sandbox.latency_seconds, sandbox.latency_jitter_seconds = 0.08, 0.02
    for _ in range(200):
        sandbox.serve_request("GET", "/nothing/here", {}, b"")
    assert len(slept) == 200
    assert all(0.06 <= s <= 0.10 for s in slept)
    assert min(slept) < 0.065 and max(slept) > 0.095, "the jitter spreads over the whole ± range"


def test_the_cli_sandbox_takes_the_latency_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from connector import cli
    from connector.ops import sandbox_run

    seen: dict[str, float] = {}

    def fake_run(**kw: float) -> None:
        seen.update(latency_ms=kw["latency_ms"], jitter_ms=kw["jitter_ms"])

    monkeypatch.setattr(sandbox_run, "run_sandbox", fake_run)
    result = CliRunner().invoke(cli.main, ["sandbox", "--latency-ms", "80", "--jitter-ms", "20"])
    assert result.exit_code == 0, result.output
    assert seen == {"latency_ms": 80.0, "jitter_ms": 20.0}


def test_concurrent_requests_never_pass_the_burst_limit() -> None:
    """Requests served on many threads at one frozen instant: exactly R get through, the rest are 429."""
    with HubSpotSandbox(contacts=5, clock=FrozenClock(NOW)) as sb:
        sb.requests_per_10s = 20
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def hit() -> None:
            for _ in range(5):
                request = urllib.request.Request(f"{sb.base_url}/crm/v3/owners", headers={"Authorization": f"Bearer {sb.token}"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                with lock:
                    statuses[status] += 1

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == Counter({200: 20, 429: 20})


def test_limits_count_a_request_when_the_network_delivers_it_not_when_the_sandbox_wakes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FrozenClock(NOW)
    sandbox = HubSpotSandbox(contacts=3, clock=clock)
    sandbox.latency_seconds = 0.08
    sandbox.search_rate_per_second = 1
    late = iter([0.0, 0.5])  # the second request's thread wakes half a second after its delay (a pause in this process)
    monkeypatch.setattr(_http.time, "sleep", lambda seconds: clock.advance(seconds + next(late)))
    headers = {"authorization": f"Bearer {sandbox.token}"}
    first = sandbox.serve_request("POST", "/crm/v3/objects/contacts/search", headers, b"{}")
    clock.advance(0.9)  # sent 0.98 s after the first one arrived: it arrives within the same second
    second = sandbox.serve_request("POST", "/crm/v3/objects/contacts/search", headers, b"{}")
    assert (first.status, second.status) == (200, 429), "counted at arrival (0.08 + 0.98 s), not at the late wake-up"
    assert [round(t, 2) for t, *_ in sandbox.request_log] == [0.08, 1.06]
