"""A connector replica as its own OS process, for the fault suite: `python -m tests.faults.worker '<json>'`.

It runs backfill (or sync) passes with a short poll lease until the backfill has completed and the outbox
is empty, printing one JSON line per handled page (so the test can wait for progress without sleeping)
and one at the end. Retry and limiter waits are scaled down by `sleep_scale` to keep the suite fast:
the limiter re-checks its shared window after every sleep, so a shorter sleep never lets a call through early.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from connector.core.clock import SystemClock
from connector.config import example_config_path, load_settings
from connector.core.errors import TransientError
from connector.runners.jobs import RunSummary, backfill, make_adapters, sync_once
from connector.runners.leases import Replica
from connector.pipeline.batch import BatchResult
from connector.pipeline.stages import write
from connector.state.ratelimit import guard_factory
from connector.state.store import Store


class ScaledClock(SystemClock):
    """Real time, with every sleep (retry backoff, Retry-After, limiter waits) shortened by `scale`."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) * self.scale)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    settings = load_settings(example_config_path(), cfg["overrides"])
    clock = ScaledClock(float(cfg.get("sleep_scale", 1.0)))
    replica = Replica(lease_seconds=float(cfg["lease_seconds"]))
    crm, object_type = cfg.get("crm", "hubspot"), cfg.get("object_type", "contacts")
    run = backfill if cfg.get("mode", "backfill") == "backfill" else sync_once
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)

        def on_batch(_crm: str, batch: BatchResult, _summary: RunSummary) -> None:
            emit(event="batch", worker=replica.worker, fetched=batch.fetched, written=batch.written)

        emit(event="started", worker=replica.worker)
        ran = 0
        while True:
            # A backfill another replica completed is not started again (its cursor reads "" when done).
            finished = store.get_cursor(crm, object_type, "all") == "" if run is backfill else ran > 0
            if finished:
                if not store.count_pending_outbox().get(crm):
                    emit(event="done", worker=replica.worker)
                    return 0
                # Writes a killed replica had claimed come back when its claim lease runs out.
                write(store, adapters[crm], clock.now(), worker=replica.worker, lease_seconds=replica.lease_seconds, clock=clock)
                time.sleep(0.25)
                continue
            try:
                extra = {"restart_completed": False} if run is backfill else {}
                summary = run(settings, store, adapters, clock, replica=replica, on_batch=on_batch, **extra)
            except TransientError as exc:
                # As serve's poll loop does: a call that failed every attempt is tried again on the next pass.
                emit(event="error", worker=replica.worker, error=str(exc))
                continue
            ran += not summary.held_elsewhere
            if summary.aborted:
                emit(event="aborted", worker=replica.worker, reason=summary.aborted)
                return 1
            if summary.held_elsewhere:
                time.sleep(0.25)  # another replica polls; its lease, or a dead holder's expiry, decides

if __name__ == "__main__":
    sys.exit(main(sys.argv))
