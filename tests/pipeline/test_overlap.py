"""Reads ahead and writes in flight (pipeline/overlap.py): every invariant of the sequential run still holds.

Each write goes out exactly once and in whole batches, the cursor never passes a page whose routing is not
durable (whatever the reader fetched ahead), and an error met by the reader or a writer thread ends the run
exactly as it ends a sequential one. Correctness only: no timings.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from connector.adapters.base import CrmAdapter, WriteFence
from connector.core.errors import AuthError, BudgetExhaustedError
from connector.core.models import FetchPage, Patch, WriteResult
from connector.pipeline.overlap import ReadAhead
from connector.runners import jobs
from connector.runners.jobs import RunSummary, backfill, sync_once
from connector.runners.leases import Replica, help_lease_name, help_while_held, poll_lease_name
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


def _numbered_pages(produced: list[int], count: int) -> Iterator[FetchPage]:
    for n in range(count):
        produced.append(n)
        yield FetchPage(leads=(), cursor=str(n))


def test_read_ahead_fetches_no_page_before_the_consumer_asks_for_it_while_ahead_says_no() -> None:
    produced: list[int] = []
    allowed = [True, True]  # the first two pages may be read ahead, then none (the budget ran low)
    reader = ReadAhead(_numbered_pages(produced, 6), depth=2, ahead=lambda: allowed.pop(0) if allowed else False)
    held = []
    try:
        for page in reader:
            threading.Event().wait(0.02)  # room for a reader that would fetch ahead to do so
            held.append((page.cursor, len(produced)))
    finally:
        reader.close()
    assert [cursor for cursor, _ in held] == ["0", "1", "2", "3", "4", "5"]
    # Pages 1 and 2 were read ahead; from page 3 on, each was fetched only once the consumer asked for it.
    assert [n for _, n in held][2:] == [3, 4, 5, 6]


def test_ahead_while_budget_looks_at_the_budget_only_when_pages_since_could_have_spent_the_margin(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    left = [jobs.OVERLAP_MIN_BUDGET + 2 * jobs.CALLS_PER_PAGE_AT_MOST + 50, jobs.OVERLAP_MIN_BUDGET, jobs.OVERLAP_MIN_BUDGET - 1, 50_000]
    looks: list[int] = []

    def remaining(*_args: Any) -> int:
        looks.append(left[len(looks)])
        return looks[-1]

    monkeypatch.setattr(jobs, "budget_remaining", remaining)
    ahead = jobs._ahead_while_budget(env.settings, env.store, "hubspot", env.clock)
    assert [ahead() for _ in range(6)] == [True, True, True, True, False, True]
    assert len(looks) == 4, "two pages read ahead on a margin of 250 calls without looking again"


def test_no_page_is_read_ahead_once_the_budget_may_not_cover_routing_it(
    store_url: str, big_hubspot: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, spy = _env(store_url, big_hubspot)
    fetched = 0
    real_fetch = spy.fetch_all

    def counted(cursor: str | None = None) -> Iterator[FetchPage]:
        nonlocal fetched
        for page in real_fetch(cursor):
            fetched += 1
            yield page

    spy.fetch_all = counted  # type: ignore[method-assign]
    # Enough budget at the start (the run overlaps) and for two pages read ahead, then under OVERLAP_MIN_BUDGET.
    looks: list[str] = []

    def remaining(*_args: Any) -> int:
        looks.append(threading.current_thread().name)
        return jobs.OVERLAP_MIN_BUDGET + jobs.CALLS_PER_PAGE_AT_MOST if len(looks) <= 3 else jobs.OVERLAP_MIN_BUDGET - 1

    monkeypatch.setattr(jobs, "budget_remaining", remaining)
    routed_with: list[int] = []
    real = jobs.run_batch

    def routing(*args: Any, **kw: Any) -> Any:
        threading.Event().wait(0.02)  # room for a reader that would fetch ahead to do so
        routed_with.append(fetched)
        return real(*args, **kw)

    monkeypatch.setattr(jobs, "run_batch", routing)
    try:
        summary = backfill(env.settings, env.store, env.adapters)
        ids = big_hubspot.records_ids("contacts")
        assert sorted(spy.written) == sorted(ids) and summary.fetched == len(ids) == 730
        assert "connector-reader" in looks, "the reader thread looked at the budget"
        # When page k is routed, at most pages 1 and 2 were read ahead; from page 2 on, exactly the pages asked for.
        assert len(routed_with) == 8 and all(n <= max(k, 2) for k, n in enumerate(routed_with, start=1))
        assert routed_with[1:] == [2, 3, 4, 5, 6, 7, 8]
    finally:
        env.close()


POLL = poll_lease_name("hubspot", "contacts", "all")


def _on_first_page(work: Callable[[], Any]) -> tuple[Callable[[str, Any, RunSummary], None], list[Any], threading.Thread]:
    """(an on_batch callback starting `work` in a thread at the run's first page, when the poller holds its lease;
    the list its result lands in; that thread)."""
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(work()))

    def start(_crm: str, _batch: Any, _summary: RunSummary) -> None:
        if thread.ident is None:
            thread.start()

    return start, done, thread


def test_the_pollers_writers_leave_the_streams_writes_to_an_announced_helper_and_send_what_is_left_at_the_end(
    store_url: str, big_hubspot: HubSpotSandbox,
) -> None:
    env, spy = _env(store_url, big_hubspot)
    # Another replica is announced as helping (it sends nothing here: whatever it leaves, the poller sends at the end).
    assert env.store.acquire_lease(help_lease_name(POLL), "helper", env.store.shared_clock(env.clock).now(), ttl_seconds=600)
    sent_while_routing: list[int] = []
    try:
        summary = backfill(env.settings, env.store, env.adapters,
                           on_batch=lambda _crm, _batch, _summary: sent_while_routing.append(len(spy.write_calls)))
        ids = big_hubspot.records_ids("contacts")
        assert sent_while_routing == [0] * 8, "no write of the poller's while the stream ran"
        assert sorted(spy.written) == sorted(ids) and summary.written == len(ids)
        assert sorted(spy.write_calls) == [30, *([100] * 7)], "whole batches, the tail in one call"
        assert env.store.count_pending_outbox().get("hubspot", 0) == 0
    finally:
        env.close()


def test_a_helper_and_the_pollers_writers_send_every_write_exactly_once_between_them(
    store_url: str, big_hubspot: HubSpotSandbox,
) -> None:
    env, spy = _env(store_url, big_hubspot)
    helper_adapter = Spy(jobs.make_adapters(env.settings, clock=env.clock)["hubspot"])  # the other replica's own client
    start_helper, helped, helper = _on_first_page(
        lambda: help_while_held(env.store, helper_adapter, POLL, Replica(worker="helper"), env.clock, done=lambda: False))
    try:
        summary = backfill(env.settings, env.store, env.adapters, on_batch=start_helper)
        helper.join(timeout=30)
        ids = big_hubspot.records_ids("contacts")
        assert sorted(spy.written + helper_adapter.written) == sorted(ids), "every lead written once, by one of them"
        assert summary.written + helped[0] == len(ids) and env.store.count_pending_outbox().get("hubspot", 0) == 0
        assert env.store.get_lease(help_lease_name(POLL)) is None, "the helper withdrew its announcement"
    finally:
        env.close()


def test_a_second_backfill_with_join_sends_the_running_ones_writes_until_it_is_complete(
    store_url: str, big_hubspot: HubSpotSandbox,
) -> None:
    """`connector backfill --join` on another replica: it does not exit with the object under held_elsewhere, it
    sends the poller's writes until the backfill is complete; every lead is written once, by one of them."""
    env, spy = _env(store_url, big_hubspot)
    joiner_adapters = {"hubspot": Spy(jobs.make_adapters(env.settings, clock=env.clock)["hubspot"])}
    start_joiner, joined, joiner = _on_first_page(
        lambda: backfill(env.settings, env.store, joiner_adapters, env.clock, join=True, replica=Replica(worker="joiner")))
    try:
        summary = backfill(env.settings, env.store, env.adapters, on_batch=start_joiner)
        joiner.join(timeout=60)
        ids = big_hubspot.records_ids("contacts")
        helper = joiner_adapters["hubspot"]
        assert joined and not joined[0].held_elsewhere and not joined[0].aborted, "it stayed until the backfill was complete"
        assert env.store.get_cursor("hubspot", "contacts", "all") == "", "and returned only once it was"
        # How the writes split depends on thread timing (the poller's writers may claim them all first); that each
        # is sent once, by one of them, does not.
        assert sorted(spy.written + helper.written) == sorted(ids), "every lead written once, by one of them"
        assert summary.written + joined[0].written == len(ids)
        assert env.store.count_pending_outbox().get("hubspot", 0) == 0
    finally:
        env.close()


def test_a_second_backfill_without_join_still_exits_with_the_object_held_elsewhere(
    store_url: str, big_hubspot: HubSpotSandbox,
) -> None:
    env, _spy = _env(store_url, big_hubspot)
    other = {"hubspot": jobs.make_adapters(env.settings, clock=env.clock)["hubspot"]}
    seen: list[RunSummary] = []

    def second(_crm: str, _batch: Any, _summary: RunSummary) -> None:
        if not seen:
            seen.append(backfill(env.settings, env.store, other, env.clock, replica=Replica(worker="second")))

    try:
        backfill(env.settings, env.store, env.adapters, on_batch=second)
        assert seen[0].held_elsewhere == ["hubspot contacts all"]
    finally:
        env.close()
