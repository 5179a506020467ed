"""Peak RSS of a backfill at two sizes, each in a fresh process, the sandbox in another: streaming means the ratio stays near 1."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import bench_settings, connection_overrides, machine, pass_mark, print_table, sandbox_process

TARGET_RATIO = 1.2


def current_rss_kb() -> int:
    """This process's resident set now (VmRSS), in kilobytes; 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(argv: list[str]) -> int:
    """In a fresh process: one backfill against the sandbox described by --info; print its peak RSS as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory child")
    parser.add_argument("--crm", choices=("hubspot", "salesforce"), required=True)
    parser.add_argument("--info", required=True, help="the sandbox's connection info (JSON)")
    parser.add_argument("--state", required=True, help="directory for the SQLite state store")
    parser.add_argument("--store-url", default=None)
    args = parser.parse_args(argv)
    from connector.core.clock import SystemClock
    from connector.runners.jobs import backfill, make_adapters
    from connector.state.ratelimit import guard_factory
    from connector.state.store import Store

    logging.getLogger("connector.jobs").setLevel(logging.ERROR)  # the example config's deactivated rep warns every run
    overrides = connection_overrides(args.crm, json.loads(args.info), **({"daily_limit": 10_000_000} if args.crm == "hubspot" else {}))
    settings = bench_settings(Path(args.state), **{args.crm: overrides}, store_url=args.store_url)
    clock = SystemClock()
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports and config, before any lead
    started = time.perf_counter()
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        summary = backfill(settings, store, adapters, clock)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    print(json.dumps({"peak_kb": peak_kb, "baseline_kb": baseline_kb, "end_kb": current_rss_kb(), "fetched": summary.fetched,
                      "written": summary.written, "seconds": seconds}), flush=True)
    return 0


def measure(crm: str, leads: int, store_url: str | None) -> dict[str, float]:
    """One sandbox process seeded with `leads`, one fresh backfill process against it; the child's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, sandbox_process(crm, leads) as sandbox:
        args = [sys.executable, "-m", "bench.memory", "child", "--crm", crm, "--info", json.dumps(sandbox.info), "--state", tmp]
        if store_url:
            args += ["--store-url", store_url]
        done = subprocess.run(args, capture_output=True, text=True, cwd=str(Path(__file__).resolve().parent.parent))
        if done.returncode != 0:
            raise RuntimeError(f"memory child ({crm}, {leads} leads) exited {done.returncode}: {done.stderr.strip()[-800:]}")
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


def run(argv: list[str]) -> dict[str, float]:
    """`python -m bench memory [--small N] [--large N] [--crm hubspot|salesforce] [--store-url URL]`."""
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--small", type=int, default=20_000, help="leads in the small backfill (default 20,000)")
    parser.add_argument("--large", type=int, default=200_000, help="leads in the large backfill (default 200,000)")
    parser.add_argument("--crm", choices=("hubspot", "salesforce"), default="hubspot")
    parser.add_argument("--store-url", default=None, help="state store (default: SQLite in a temporary directory; a "
                        "PostgreSQL URL must point at an empty database per run)")
    args = parser.parse_args(argv)
    small = measure(args.crm, args.small, args.store_url)
    large = measure(args.crm, args.large, args.store_url)
    ratio = large["peak_kb"] / small["peak_kb"]
    # What each lead beyond the small run left in memory at the peak: 0 when the backfill streams.
    per_lead = (large["peak_kb"] - small["peak_kb"]) * 1024 / max(1, args.large - args.small)
    figures = {
        "bytes_per_lead": per_lead,
        "small_end_mb": small.get("end_kb", 0) / 1024,
        "large_end_mb": large.get("end_kb", 0) / 1024,
        "small_leads": float(args.small),
        "large_leads": float(args.large),
        "small_peak_mb": small["peak_kb"] / 1024,
        "large_peak_mb": large["peak_kb"] / 1024,
        "small_baseline_mb": small["baseline_kb"] / 1024,
        "large_baseline_mb": large["baseline_kb"] / 1024,
        "peak_ratio": ratio,
        "small_seconds": small["seconds"],
        "large_seconds": large["seconds"],
        "large_leads_per_second": large["fetched"] / large["seconds"] if large["seconds"] else 0.0,
    }
    rows = [
        (f"{args.small} leads: peak RSS", f"{figures['small_peak_mb']:.1f} MB",
         f"baseline {figures['small_baseline_mb']:.1f} MB, {small['fetched']:.0f} fetched in {small['seconds']:.0f} s"),
        (f"{args.large} leads: peak RSS", f"{figures['large_peak_mb']:.1f} MB",
         f"baseline {figures['large_baseline_mb']:.1f} MB, {large['fetched']:.0f} fetched in {large['seconds']:.0f} s"),
        ("ratio large / small", f"{ratio:.3f}", f"≤ {TARGET_RATIO}: {pass_mark(ratio <= TARGET_RATIO)}"),
        ("kept per extra lead", f"{per_lead:.0f} B", f"(peak large − peak small) / {args.large - args.small:,} leads"),
        ("RSS after the run", f"{figures['small_end_mb']:.1f} / {figures['large_end_mb']:.1f} MB", "small / large (peak is the figure)"),
    ]
    print_table(f"memory: {args.crm} backfill, each in a fresh process (sandbox in its own process)", rows)
    m = machine()
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}", flush=True)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        sys.exit(child(sys.argv[2:]))
    print("run it as: python -m bench memory [options]", file=sys.stderr)
    sys.exit(2)
