"""Event aggregates kept with the events: folded in as events arrive, rebuilt when stale, never missing an event (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.engine.scoring import CompiledScoring, EventAggregates, ScoringConfig, compile_scoring, score_lead
from connector.core.models import Event, Lead
from connector.pipeline.stages import aggregate_fold, lead_events
from connector.state.store import Store
from tests.engine.scoring.test_scoring import example_scoring_table

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
LEAD = Lead(crm="hubspot", object_type="contacts", id="101", email="Ada@Example.com ", country="FI", employees=500)
EMAIL = "ada@example.com"


@pytest.fixture(scope="module")
def scoring() -> CompiledScoring:
    return compile_scoring(ScoringConfig.model_validate(example_scoring_table()))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def visits(key: str, n: int, start: int = 0, path: str = "/pricing") -> list[Event]:
    return [
        Event(key, "Page Viewed", NOW - timedelta(days=1 + (start + i) % 40, hours=i), {"path": path}, "page", f"{key}-{path}-{start + i}")
        for i in range(n)
    ]


def raw_score(store: Store, scoring: CompiledScoring, now: datetime = NOW) -> float:
    events = store.events_for([LEAD.key, EMAIL])
    merged = sorted([*events[LEAD.key], *events[EMAIL]], key=lambda e: e.occurred_at)
    return score_lead(LEAD, merged, scoring, now).primary.score


def kept_score(store: Store, scoring: CompiledScoring, now: datetime = NOW, **kw: Any) -> tuple[float, Any]:
    given = lead_events(store, [LEAD], scoring, now, **kw)[LEAD.key]
    return score_lead(LEAD, given, scoring, now).primary.score, given


def forbid(monkeypatch: pytest.MonkeyPatch, store: Store, *names: str) -> None:
    for name in names:
        def refuse(*_a: Any, _name: str = name, **_k: Any) -> Any:
            raise AssertionError(f"scoring read {_name}: it should have used the kept aggregates")

        monkeypatch.setattr(store, name, refuse)


def test_arriving_events_are_folded_into_kept_aggregates(store: Store, scoring: CompiledScoring, monkeypatch: pytest.MonkeyPatch) -> None:
    fold = aggregate_fold(scoring)
    store.add_events(visits(EMAIL, 5) + visits(LEAD.key, 3, path="/demo"), fold=fold)
    assert {sig for sig, _ in store.event_aggregates([EMAIL, LEAD.key]).values()} == {""}  # new keys start stale
    score, given = kept_score(store, scoring)  # rebuilt once from the events, and saved
    assert isinstance(given, EventAggregates) and given.event_count == 8
    assert score == pytest.approx(raw_score(store, scoring), abs=0.011) and score > 0
    assert {sig for sig, _ in store.event_aggregates([EMAIL, LEAD.key]).values()} == {scoring.signature}
    # More events, some repeated: folded in on arrival (each once); scoring reads no event row.
    assert store.add_events(visits(EMAIL, 4, start=5) + visits(EMAIL, 2), fold=fold) == 4
    expected = raw_score(store, scoring)
    with monkeypatch.context() as m:
        forbid(m, store, "events_for", "rebuild_event_aggregates")
        score, given = kept_score(store, scoring)
    assert given.event_count == 12
    assert score == pytest.approx(expected, abs=0.011)


def test_writers_without_a_fold_purges_and_new_configs_make_aggregates_stale(store: Store, scoring: CompiledScoring) -> None:
    fold = aggregate_fold(scoring)
    store.add_events(visits(EMAIL, 6), fold=fold)
    kept_score(store, scoring)
    store.add_events(visits(EMAIL, 2, start=6))  # no fold: the key is marked stale, not left behind
    assert store.event_aggregates([EMAIL])[EMAIL][0] == ""
    assert kept_score(store, scoring)[1].event_count == 8
    other = compile_scoring(ScoringConfig.model_validate({**example_scoring_table(), "mql_threshold": 1}))
    assert other.signature != scoring.signature
    assert kept_score(store, other)[1].event_count == 8  # built for `other` now
    assert store.event_aggregates([EMAIL])[EMAIL][0] == other.signature
    store.add_events(visits(EMAIL, 1, start=8), fold=fold)  # folded by a writer with the older config: stale again
    assert store.event_aggregates([EMAIL])[EMAIL][0] == ""
    kept_score(store, scoring)
    assert store.purge_events(NOW - timedelta(days=4)) > 0
    assert store.event_aggregates([EMAIL])[EMAIL][0] == ""
    score, given = kept_score(store, scoring)
    assert given.event_count == len(store.events_for([EMAIL])[EMAIL])
    assert score == pytest.approx(raw_score(store, scoring), abs=0.011)


def test_dry_runs_keep_rebuilt_aggregates_in_memory(store: Store, scoring: CompiledScoring) -> None:
    store.add_events(visits(EMAIL, 3))
    assert kept_score(store, scoring, save=False)[1].event_count == 3
    assert store.event_aggregates([EMAIL])[EMAIL][0] == ""


def test_keys_without_events_have_no_rows_and_erasure_removes_them(store: Store, scoring: CompiledScoring) -> None:
    score, given = kept_score(store, scoring)
    assert given.event_count == 0 and store.event_aggregates([EMAIL, LEAD.key]) == {}
    assert score == raw_score(store, scoring)
    store.add_events(visits(EMAIL, 2), fold=aggregate_fold(scoring))
    kept_score(store, scoring)
    store.erase_person(refs=[EMAIL], lead_keys=[LEAD.key], redact=lambda s: s, now=NOW)
    assert store.event_aggregates([EMAIL]) == {}


def test_events_dated_after_now_are_left_out_as_the_raw_events_leave_them_out(store: Store, scoring: CompiledScoring) -> None:
    future = [Event(EMAIL, "Page Viewed", NOW + timedelta(days=2), {"path": "/pricing"}, "page", "future-1")]
    store.add_events(visits(EMAIL, 2) + future, fold=aggregate_fold(scoring))
    score, given = kept_score(store, scoring)
    assert isinstance(given, list) and len(given) == 3  # raw events for this lead: score_lead drops the future one
    assert score == raw_score(store, scoring)
    later = NOW + timedelta(days=3)
    score, given = kept_score(store, scoring, later)
    assert isinstance(given, EventAggregates)
    assert score == pytest.approx(raw_score(store, scoring, later), abs=0.011)


def test_an_event_stored_while_its_key_is_rebuilt_is_not_lost(store: Store, scoring: CompiledScoring, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild has read the events; a writer stores one more before the rebuild saves: it waits, then folds it in."""
    import connector.pipeline.stages as pipeline

    store.add_events(visits(EMAIL, 4))  # stale: the next scoring rebuilds
    read, writing = threading.Event(), threading.Event()
    real = pipeline.aggregate_events

    def slow_build(events: Any, compiled: CompiledScoring, until: Any = None) -> EventAggregates:
        built = real(events, compiled, until)
        read.set()
        writing.wait(10)
        time.sleep(0.5)  # the writer is now blocked on the key (or, without the row locks, would have slipped past)
        return built

    monkeypatch.setattr(pipeline, "aggregate_events", slow_build)
    errors: list[BaseException] = []

    def run(fn: Any) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        return thread

    rebuilder = run(lambda: lead_events(store, [LEAD], scoring, NOW))
    assert read.wait(10)
    writer = run(lambda: store.add_events(visits(EMAIL, 1, start=30), fold=aggregate_fold(scoring)))
    writing.set()
    rebuilder.join(20)
    writer.join(20)
    monkeypatch.setattr(pipeline, "aggregate_events", real)
    assert errors == []
    assert store.event_aggregates([EMAIL])[EMAIL][0] == scoring.signature
    with monkeypatch.context() as m:
        forbid(m, store, "events_for", "rebuild_event_aggregates")
        assert kept_score(store, scoring)[1].event_count == 5
