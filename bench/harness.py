"""What the CRM benchmarks share: settings pointed at the sandboxes, a sandbox in its own process, windows, tables, the machine."""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connector.config import Settings, example_config_path, load_settings

# The example config is what `connector demo` runs on; benches change only what the sandbox needs.
ROUTING_OVERRIDES: dict[str, Any] = {"when_unavailable": "fallback"}  # results must not depend on the hour of the run


def hubspot_overrides(base_url: str, token: str, **extra: Any) -> dict[str, Any]:
    """[hubspot] keys that point the connector at a HubSpot sandbox."""
    return {"enabled": True, "base_url": base_url, "access_token": token, "safety_lag_seconds": 0, **extra}


def salesforce_overrides(instance_url: str, client_id: str, client_secret: str, ca_file: str, **extra: Any) -> dict[str, Any]:
    """[salesforce] keys that point the connector at a Salesforce sandbox."""
    return {
        "enabled": True, "login_url": instance_url, "client_id": client_id, "client_secret": client_secret,
        # SystemModstamp has whole seconds (the sandbox truncates like the real org): a lookback of 0 would
        # miss an edit made in the same second the previous scan started [crm-behaviour: Salesforce incremental polling on SystemModstamp].
        "ca_bundle": ca_file, "lookback_seconds": 1, **extra,
    }


def bench_settings(
    state_dir: Path,
    *,
    hubspot: Mapping[str, Any] | None = None,
    salesforce: Mapping[str, Any] | None = None,
    store_url: str | None = None,
    routing: Mapping[str, Any] | None = None,
) -> Settings:
    """The example config with only the given CRMs enabled and a state store in state_dir (or store_url)."""
    return load_settings(example_config_path(), {
        "store": {"url": store_url or f"sqlite:///{state_dir / 'bench-state.db'}"},
        "logging": {"level": "WARNING", "as_json": False},
        "hubspot": dict(hubspot) if hubspot else {"enabled": False},
        "salesforce": dict(salesforce) if salesforce else {"enabled": False},
        "routing": {**ROUTING_OVERRIDES, **(routing or {})},
    })


def connection_overrides(crm: str, info: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """[hubspot] / [salesforce] keys from a sandbox's connection info (see `serve`)."""
    if crm == "hubspot":
        return hubspot_overrides(info["base_url"], info["token"], **extra)
    return salesforce_overrides(info["instance_url"], info["client_id"], info["client_secret"], info["ca_file"], **extra)


def max_in_window(times: Sequence[float], window_seconds: float) -> int:
    """The most events found in any window of window_seconds (times sorted ascending, seconds)."""
    best = 0
    for i, start in enumerate(times):
        # Events in [start, start + window): the sandbox forgets a call exactly window seconds later.
        end = bisect_right(times, start + window_seconds - 1e-9)
        best = max(best, end - i)
    return best


def machine() -> dict[str, str]:
    """Where the figures came from: CPU count, CPU model, Python version."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count() or 0), "cpu": model, "python": platform.python_version()}


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """A readable three-column table: figure, value, target or note."""
    print(title)
    width = max((len(r[0]) for r in rows), default=0)
    vwidth = max((len(r[1]) for r in rows), default=0)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>{vwidth}}  {note}")
    print(flush=True)


def pass_mark(ok: bool) -> str:
    return "ok" if ok else "MISSES TARGET"


@contextmanager
def sandbox_process(
    crm: str, leads: int, *, requests_per_10s: int | None = None, search_per_second: int | None = None,
    latency_ms: float = 0.0, jitter_ms: float = 0.0,
) -> Iterator[SandboxProcess]:
    """A sandbox CRM in its own Python process (its memory and CPU are not the connector's).

    `latency_ms` ± `jitter_ms` (uniform): the simulated network time of every request, served concurrently
    like a real API's (the sandbox's server is threaded; its rate limits stay exact)."""
    args = [sys.executable, "-m", "bench.harness", "serve", crm, str(leads)]
    if requests_per_10s is not None:
        args += ["--rate", str(requests_per_10s)]
    if search_per_second is not None:
        args += ["--search-rate", str(search_per_second)]
    if latency_ms or jitter_ms:
        args += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_root())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {crm} sandbox process exited before serving (exit code {proc.wait()})")
        yield SandboxProcess(proc, json.loads(line))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF on stdin: the sandbox stops and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class SandboxProcess:
    """A running `python -m bench.harness serve` child: its connection info, and the counters it reports on request."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self._proc = proc
        self.info = info

    def ask(self, command: str) -> dict[str, Any]:
        """Send one command ("stats" or "reset") and read its JSON answer."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox process exited while answering {command!r}")
        answer: dict[str, Any] = json.loads(line)
        return answer


def _root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def serve(argv: list[str]) -> int:
    """Child process: seed and start one sandbox, print its connection info, then answer commands until stdin closes."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.harness serve")
    parser.add_argument("crm", choices=("hubspot", "salesforce"))
    parser.add_argument("leads", type=int)
    parser.add_argument("--rate", type=int, default=None, help="HubSpot burst limit, requests per 10 s")
    parser.add_argument("--search-rate", type=int, default=None, help="HubSpot search limit, requests per second")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated network latency of every request")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± uniform jitter on the latency")
    args = parser.parse_args(argv)
    if args.crm == "hubspot":
        from connector.sandbox.hubspot import HubSpotSandbox

        hs = HubSpotSandbox(contacts=args.leads)
        hs.requests_per_10s = args.rate
        hs.search_rate_per_second = args.search_rate
        hs.start()
        info: dict[str, Any] = {"base_url": hs.base_url, "token": hs.token}
        sandbox: Any = hs
    else:
        from connector.sandbox.salesforce import SalesforceSandbox

        sf = SalesforceSandbox(leads=args.leads)
        sf.daily_api_limit = 10_000_000  # the benchmark measures calls; it must not run into the org's allocation
        sf.start()
        info = {"instance_url": sf.instance_url, "client_id": sf.client_id, "client_secret": sf.client_secret, "ca_file": sf.ca_file}
        sandbox = sf
    sandbox.latency_seconds = args.latency_ms / 1000
    sandbox.latency_jitter_seconds = args.jitter_ms / 1000
    # The seeded records live as long as this process: kept out of the collector's scans, so a full collection
    # over 100,000 records does not stall the sandbox's answers (its pauses are not the network's).
    gc.freeze()
    print(json.dumps(info), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                sandbox.reset_calls()
                print("{}", flush=True)
            elif command == "stats":
                with sandbox._lock:  # the request handler appends under this lock
                    calls = dict(sandbox.calls)
                    log = list(sandbox.request_log)
                print(json.dumps({"calls": calls, "log": [list(entry) for entry in log]}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(sys.argv[2:]))
    print("usage: python -m bench.harness serve {hubspot|salesforce} LEADS [--rate R] [--search-rate S]", file=sys.stderr)
    sys.exit(2)
