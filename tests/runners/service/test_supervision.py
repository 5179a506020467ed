"""Supervised background loops: restarted after any exception (counted, reported by /readyz until the next turn);
a dead or stuck thread is reported by /healthz."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from connector.core.clock import FrozenClock
from connector.runners.service.supervision import Supervisor

from .conftest import START

WAIT = 10.0


def test_a_loop_that_raises_is_restarted_counted_and_reported_until_its_next_turn() -> None:
    stop, registry, clock = threading.Event(), CollectorRegistry(), FrozenClock(START)
    supervisor = Supervisor(clock, stop, registry, backoff_seconds=(0.0, 0.0))
    go_on = threading.Event()
    failing, recovered = threading.Event(), threading.Event()
    calls: list[int] = []

    def loop() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("the state store is unreachable")
        failing.set()
        go_on.wait(WAIT)  # the third start runs: one turn, then it waits for the stop
        supervisor.turn("loop")
        recovered.set()
        stop.wait(WAIT)

    thread = supervisor.spawn("loop", loop, stuck_after_seconds=60)
    try:
        assert failing.wait(WAIT)
        assert len(calls) == 3
        assert registry.get_sample_value("connector_thread_failures_total", {"thread": "loop"}) == 2
        state = supervisor.readiness()["loop"]
        assert state.startswith("failing (ConnectionError: the state store is unreachable)")
        assert supervisor.liveness() == {}  # failing, not dead: a restart of the process would not help
        go_on.set()
        assert recovered.wait(WAIT)
        assert supervisor.readiness() == {"loop": "ok"}
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()


# The dying thread's SystemExit reaches threading.excepthook, which pytest reports as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_thread_and_a_stuck_loop_fail_liveness_naming_the_thread() -> None:
    stop, clock = threading.Event(), FrozenClock(START)
    supervisor = Supervisor(clock, stop, CollectorRegistry(), backoff_seconds=(0.0, 0.0))

    def dies() -> None:
        raise SystemExit  # not an Exception: nothing restarts it

    dead = supervisor.spawn("dies", dies, stuck_after_seconds=None)
    hangs = supervisor.spawn("hangs", lambda: None if stop.wait(WAIT) else None, stuck_after_seconds=300)
    try:
        dead.join(WAIT)
        assert supervisor.liveness() == {"dies": "thread is dead"}
        clock.advance(301)
        found = supervisor.liveness()
        assert found["hangs"].startswith("stuck: no loop turn completed for 301 s (deadline 300 s)")
        assert supervisor.readiness()["hangs"] == found["hangs"]
    finally:
        stop.set()
        hangs.join(WAIT)
    assert supervisor.liveness() == {}  # stopping: threads ending is expected
