"""Reads ahead and writes in flight (pipeline/overlap.py): every invariant of the sequential run still holds.

Each write goes out exactly once and in whole batches, the cursor never passes a page whose routing is not
durable (whatever the reader fetched ahead), and an error met by the reader or a writer thread ends the run
exactly as it ends a sequential one. Correctness only: no timings.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from connector.adapters.base import CrmAdapter, WriteFence
from connector.core.errors import AuthError, BudgetExhaustedError
from connector.core.models import FetchPage, Patch, WriteResult
from connector.pipeline.overlap import ReadAhead
from connector.runners import jobs
from connector.runners.jobs import RunSummary, backfill, sync_once
from connector.sandbox.hubspot import HubSpotSandbox

from .conftest import Env

CONCURRENT = {"sync": {"read_ahead_pages": 2, "writes_in_flight": 3}}
SEQUENTIAL = {"sync": {"read_ahead_pages": 0, "writes_in_flight": 0}}


class Spy:
    """Wraps an adapter: records every patch written (from any thread); can fail a read or a write on cue."""

    def __init__(self, inner: CrmAdapter, *, fail_page: int | None = None, fail_write: BaseException | None = None) -> None:
        self.inner = inner
        self.written: list[str] = []
        self.write_calls: list[int] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._fail_page = fail_page
        self._fail_write = fail_write

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        for n, page in enumerate(self.inner.fetch_all(cursor)):
            if self._fail_page is not None and n == self._fail_page:
                raise AuthError("the token was revoked mid-run", crm="hubspot", credential="access_token")
            yield page

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        with self._lock:
            self.threads.add(threading.current_thread().name)
        if self._fail_write is not None:
            raise self._fail_write
        results = self.inner.write(patches, fence=fence)
        with self._lock:
            self.written += [r.record_id for r in results if r.ok]
            self.write_calls.append(len(patches))
        return results


@pytest.fixture
def big_hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=7, contacts=730, companies=5, leads=0) as sb:
        yield sb


def _env(store_url: str, sandbox: HubSpotSandbox, **spy: Any) -> tuple[Env, Spy]:
    env = Env(store_url, sandbox, **CONCURRENT)
    adapter = Spy(env.adapters["hubspot"], **spy)
    env.adapters = {"hubspot": adapter}  # type: ignore[dict-item]
    return env, adapter


def test_writes_in_flight_write_every_lead_exactly_once_in_whole_batches(store_url: str, big_hubspot: HubSpotSandbox) -> None:
    env, spy = _env(store_url, big_hubspot)
    try:
        summary = backfill(env.settings, env.store, env.adapters)
        ids = big_hubspot.records_ids("contacts")
        assert sorted(spy.written) == sorted(ids), "every lead written once"
        assert Counter(spy.written).most_common(1)[0][1] == 1
        assert summary.written == len(ids) and summary.fetched == len(ids)
        # 730 leads: seven full batches while the stream runs, the last 30 in one call at the end.
        assert sorted(spy.write_calls) == [30, *([100] * 7)]
        assert all(name.startswith("connector-writer-") for name in spy.threads)
        assert env.store.count_pending_outbox().get("hubspot", 0) == 0
        assert env.store.get_cursor("hubspot", "contacts", "all") == ""  # completed
        again = sync_once(env.settings, env.store, env.adapters)
        assert again.written == 0, "a re-sync finds nothing to write"
    finally:
        env.close()


def test_the_cursor_never_passes_a_page_whose_routing_failed_though_later_pages_were_read(
    store_url: str, big_hubspot: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, _spy = _env(store_url, big_hubspot)
    cursors: list[str | None] = []
    real = jobs.run_batch

    def failing_third(*args: Any, **kw: Any) -> Any:
        page: FetchPage = args[3]
        if len(cursors) == 2:
            raise RuntimeError("the store went away while routing page 3")
        cursors.append(page.cursor)
        return real(*args, **kw)

    monkeypatch.setattr(jobs, "run_batch", failing_third)
    try:
        with pytest.raises(RuntimeError, match="page 3"):
            backfill(env.settings, env.store, env.adapters)
        # The reader was up to two pages ahead; the cursor stays at the last page routed durably.
        assert env.store.get_cursor("hubspot", "contacts", "all") == cursors[1]
        routed = env.store.get_lead_states([f"hubspot:contacts:{i}" for i in big_hubspot.records_ids("contacts")])
        assert len(routed) == 200
        monkeypatch.setattr(jobs, "run_batch", real)
        resumed = backfill(env.settings, env.store, env.adapters)
        assert resumed.fetched == 730 - 200 and env.store.count_pending_outbox().get("hubspot", 0) == 0
    finally:
        env.close()


def test_a_reader_error_ends_the_run_as_before_and_keeps_the_cursor_at_the_last_durable_page(
    store_url: str, big_hubspot: HubSpotSandbox,
) -> None:
    env, _spy = _env(store_url, big_hubspot, fail_page=3)
    summary = RunSummary(mode="backfill")
    try:
        with pytest.raises(AuthError, match="revoked"):
            backfill(env.settings, env.store, env.adapters, summary=summary)
        assert summary.aborted_reason == "auth" and summary.fetched == 300
        cursor = env.store.get_cursor("hubspot", "contacts", "all")
        assert cursor is not None and cursor != ""
        # Writes queued by the three routed pages are in the outbox or sent: none lost.
        assert summary.written + env.store.count_pending_outbox().get("hubspot", 0) == 300
    finally:
        env.close()


@pytest.mark.parametrize("overlap", [CONCURRENT, SEQUENTIAL], ids=["writers", "sequential"])
def test_a_writer_threads_auth_error_aborts_the_run_like_a_sequential_one(
    store_url: str, big_hubspot: HubSpotSandbox, overlap: dict[str, Any],
) -> None:
    env = Env(store_url, big_hubspot, **overlap)
    spy = Spy(env.adapters["hubspot"], fail_write=AuthError("401 on batch update", crm="hubspot", credential="access_token"))
    summary = RunSummary(mode="backfill")
    try:
        with pytest.raises(AuthError, match="401 on batch update"):
            backfill(env.settings, env.store, {"hubspot": spy}, summary=summary)  # type: ignore[dict-item]
        assert summary.aborted_reason == "auth" and summary.aborted_crm == "hubspot"
        assert summary.written == 0
        assert env.store.count_pending_outbox()["hubspot"] > 0, "the writes wait in the outbox for the next run"
    finally:
        env.close()


def test_a_writer_threads_budget_error_stops_the_run_cleanly(store_url: str, big_hubspot: HubSpotSandbox) -> None:
    error = BudgetExhaustedError("hubspot: daily API budget used up", crm="hubspot", resumes_at="2026-12-07T00:00:00+00:00")
    env, _spy = _env(store_url, big_hubspot, fail_write=error)
    try:
        summary = backfill(env.settings, env.store, env.adapters)
        assert summary.aborted_reason == "budget" and summary.aborted is not None and "used up" in summary.aborted
    finally:
        env.close()


def test_read_ahead_hands_pages_over_in_order_and_stops_its_reader_when_closed() -> None:
    produced: list[int] = []

    def pages() -> Iterator[FetchPage]:
        for n in range(1000):
            produced.append(n)
            yield FetchPage(leads=(), cursor=str(n))

    reader = ReadAhead(pages(), depth=2)
    got = []
    for page in reader:
        got.append(page.cursor)
        if len(got) == 5:
            break
    reader.close()
    assert got == ["0", "1", "2", "3", "4"]
    assert len(produced) <= 5 + 2 + 1, "never more than `depth` pages (plus the one in hand) ahead"
