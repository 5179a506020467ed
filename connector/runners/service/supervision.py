"""Supervised background threads: each loop survives any exception with backoff, and reports its turns for /readyz and /healthz."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from connector.core.clock import Clock
from connector.core.errors import ConnectorError
from connector.core.retrying import wait_after

log = logging.getLogger("connector.service")

# A loop that failed waits this long before it starts again (doubling up to the cap) [architecture: Nothing lost].
RESTART_BACKOFF_SECONDS = (1.0, 60.0)


@dataclass
class Loop:
    """One supervised thread: when it last completed a turn (monotonic seconds) and why it is failing, if it is."""

    name: str
    stuck_after_seconds: float | None
    last_turn: float
    thread: threading.Thread | None = None
    failures: int = 0
    problem: str | None = None


class Supervisor:
    """Runs each background loop in a thread that restarts it after any exception, with backoff.

    A loop calls `turn(name)` after each completed turn. /readyz reports a loop that is failing (until its
    next turn); /healthz reports a thread that is dead, or has completed no turn for `stuck_after_seconds`
    (a hang a restart of the process can cure). A failure counts as a turn for that purpose: a loop that
    keeps failing because the database is down is alive, and a restart would not help.
    """

    def __init__(
        self, clock: Clock, stop: threading.Event, registry: CollectorRegistry | None = None, *,
        backoff_seconds: tuple[float, float] = RESTART_BACKOFF_SECONDS,
    ) -> None:
        self.clock = clock
        self.backoff_seconds = backoff_seconds
        self.stop = stop
        self.loops: dict[str, Loop] = {}
        self._lock = threading.Lock()
        self.failures = Counter(
            "connector_thread_failures", "Background loop failures (each restarted after a backoff), by thread.", ["thread"],
            registry=registry,
        )

    def spawn(self, name: str, target: Callable[[], None], *, stuck_after_seconds: float | None) -> threading.Thread:
        """Start `target` in a daemon thread named `name`, restarted after any exception until `stop` is set."""
        loop = Loop(name, stuck_after_seconds, last_turn=self.clock.monotonic())
        thread = threading.Thread(target=self._supervise, args=(loop, target), name=name, daemon=True)
        loop.thread = thread
        with self._lock:
            self.loops[name] = loop
        thread.start()
        return thread

    def turn(self, name: str) -> None:
        """The loop `name` completed a turn: it is not stuck, and no longer failing."""
        with self._lock:
            loop = self.loops.get(name)
            if loop is not None:
                loop.last_turn = self.clock.monotonic()
                loop.failures = 0
                loop.problem = None

    def _supervise(self, loop: Loop, target: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                target()
                if self.stop.is_set():
                    return
                error: Exception = RuntimeError("the loop returned before the service stopped")
            except Exception as exc:  # a background thread is a process boundary: log, count, back off, start again
                error = exc
            delay = self._failed(loop, error)
            if self.stop.wait(delay):
                return

    def _failed(self, loop: Loop, error: Exception) -> float:
        with self._lock:
            loop.failures += 1
            loop.last_turn = self.clock.monotonic()
            delay = wait_after(loop.failures, error, base_delay=self.backoff_seconds[0], max_delay=self.backoff_seconds[1])
            loop.problem = f"failing ({type(error).__name__}: {error}); restarting in {delay:.0f} s"
        self.failures.labels(loop.name).inc()
        log.error("background loop %s failed; restarting in %.1f s: %s", loop.name, delay, error,
                  exc_info=not isinstance(error, ConnectorError), extra={"loop": loop.name, "failures": loop.failures})
        return delay

    def readiness(self) -> dict[str, str]:
        """Each loop's state for /readyz: "ok", failing (and why), dead or stuck."""
        dead = self.liveness()
        with self._lock:
            return {name: dead.get(name) or loop.problem or "ok" for name, loop in self.loops.items()}

    def liveness(self) -> dict[str, str]:
        """The loops /healthz fails on: a thread that is dead, or that has completed no turn within its deadline."""
        if self.stop.is_set():
            return {}
        now = self.clock.monotonic()
        found: dict[str, str] = {}
        with self._lock:
            for name, loop in self.loops.items():
                if loop.thread is not None and not loop.thread.is_alive():
                    found[name] = "thread is dead"
                elif loop.stuck_after_seconds is not None and now - loop.last_turn > loop.stuck_after_seconds:
                    found[name] = f"stuck: no loop turn completed for {now - loop.last_turn:.0f} s (deadline {loop.stuck_after_seconds:g} s)"
        return found
