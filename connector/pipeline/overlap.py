"""Network latency overlapped with work in sync and backfill: a reader thread fetches pages ahead while the
current one is scored and routed, and writer threads send outbox batches meanwhile.

Every CRM call, whichever thread makes it, goes through the adapter's one guard (the shared rate limiter and
budget), so more threads never mean more calls than the limit allows. What stays on the main thread is what
the invariants hang on: a page's routing transaction, then its cursor [architecture: Nothing lost]. Writers
only ever send rows they claimed in the outbox, so each write goes out once, in the order it was decided per
record, with a person's edit re-checked on a replay [architecture: A person's choice wins]. An error in a
background thread (auth, budget, the store) stops the others and is raised again on the main thread, so
the run ends exactly as if the main thread had met it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from connector.adapters.base import CLAIM_LOST
from connector.core.clock import Clock
from connector.core.models import FetchPage, Lead, RoutingDecision, WriteResult
from connector.engine.scoring import ScoreOutcome
from connector.pipeline.batch import BatchResult
from connector.pipeline.notify import notify_dead_letters
from connector.pipeline.outbox import claim_fence, send
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.state.store import OutboxItem, Store

log = logging.getLogger("connector.pipeline")

_POLL_SECONDS = 0.05  # how often a blocked reader looks whether the run stopped
_JOIN_SECONDS = 30.0  # a background thread finishing its request (a limiter wait is ≤ one 10 s window)


class ReadAhead:
    """Pages of `pages` fetched by a reader thread, at most `depth` ahead of the consumer.

    Iterating yields them in order; an exception the reader meets is raised from the iteration.
    `ahead()`, asked before each page is fetched: False, the page is fetched only once the consumer asks for it (no
    call spent ahead of need, e.g. near the end of the day's API budget). `close()` stops the reader (it finishes
    the request it is in) and waits for it.
    """

    def __init__(
        self, pages: Iterator[FetchPage], depth: int, *, name: str = "connector-reader", ahead: Callable[[], bool] | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"read-ahead depth must be at least 1, got {depth}")
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._ahead = ahead
        self._demand = threading.Condition()
        self._asked = 0  # pages the consumer has asked for so far
        self._thread = threading.Thread(target=self._read, args=(pages,), name=name, daemon=True)
        self._thread.start()

    def _read(self, pages: Iterator[FetchPage]) -> None:
        try:
            read = 0
            while self._may_read(read):
                page = next(pages, None)
                if page is None:
                    self._put(("end", None))
                    return
                read += 1
                if not self._put(("page", page)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", exc))
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()

    def _may_read(self, read: int) -> bool:
        """Whether to fetch page `read` + 1 now (False: the reader stops); when reading ahead is not allowed, it
        waits until the consumer has asked for that page."""
        if self._ahead is not None and not self._ahead():
            with self._demand:
                while self._asked <= read and not self._stop.is_set():
                    self._demand.wait(_POLL_SECONDS)
        return not self._stop.is_set()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[FetchPage]:
        while True:
            with self._demand:
                self._asked += 1
                self._demand.notify()
            kind, value = self._queue.get()
            if kind == "page":
                yield value
            elif kind == "end":
                return
            else:
                raise value

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=_JOIN_SECONDS)


def read_ahead(
    pages: Iterator[FetchPage], depth: int, *, ahead: Callable[[], bool] | None = None,
) -> tuple[Iterable[FetchPage], ReadAhead | None]:
    """`pages` through a reader thread `depth` pages ahead while `ahead()` allows (depth 0: as they are, no thread)."""
    if depth <= 0:
        return pages, None
    reader = ReadAhead(pages, depth, ahead=ahead)
    return reader, reader


class WritePool:
    """`threads` writer threads flushing one CRM's outbox, one write call (a claimed batch) at a time each.

    `nudge()` after a page's rows are queued; while the stream runs only full batches leave (the minimum
    number of calls), `finish()` sends the rest and waits. While `defer()` says other replicas send this outbox's
    writes (runners/leases.py helpers_present), the writers leave the stream's writes to them and send only what is
    left at `finish()`. Results are collected for the main thread (`take_results`); the first error a writer meets
    stops them all and is raised by `check()` / `finish()`.
    """

    def __init__(
        self, store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, *, threads: int, worker: str,
        lease_seconds: float, max_attempts: int = 5, defer: Callable[[], bool] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"a write pool needs at least one thread, got {threads}")
        self._store, self._runtime, self._engine, self._clock = store, runtime, engine, clock
        self._worker, self._lease_seconds, self._max_attempts = worker, lease_seconds, max_attempts
        self._defer = defer
        self._size = runtime.adapter.write_batch_size
        self._cond = threading.Condition()
        self._claim_lock = threading.Lock()
        self._generation = 0
        self._final = False
        self._stopped = False
        self._queued = 0  # rows the pages queued (nudge) that no writer has claimed yet: full batches go out
        self._results: list[WriteResult] = []
        self._notified = 0
        self._leads: dict[str, tuple[Lead, ScoreOutcome, RoutingDecision | None]] = {}
        self._keep_leads = any("dead_letter" in channel.on for channel in engine.channels)
        self.error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._loop, args=(f"{worker}/w{i}",), name=f"connector-writer-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def remember(self, leads: Sequence[Lead], batch: BatchResult) -> None:
        """The page's leads with a write queued, for a `dead_letter` notification if their write is given up on
        (kept only when a channel wants one)."""
        if self._keep_leads:
            with self._cond:
                for lead in leads:
                    patch = batch.planned.get(lead.key)
                    if patch is not None and not patch.is_empty and lead.key in batch.scores:
                        self._leads[lead.id] = (lead, batch.scores[lead.key], batch.decisions.get(lead.key))

    def nudge(self, queued: int) -> None:
        """`queued` new rows are in the outbox: writers claim them once they make a full batch."""
        with self._claim_lock:
            self._queued += queued
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def take_results(self) -> tuple[list[WriteResult], int]:
        """Write results (and dead-letter notifications queued) since the last call."""
        with self._cond:
            results, self._results = self._results, []
            notified, self._notified = self._notified, 0
        return results, notified

    def check(self) -> None:
        """Raise the error a writer met, on the caller's thread."""
        if self.error is not None:
            self.close()
            raise self.error

    def finish(self) -> None:
        """Send what is left (partial batches too), wait for the writers, raise a writer's error."""
        with self._cond:
            self._final = True
            self._generation += 1
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self.check()

    def close(self) -> None:
        """Stop without sending more: writers finish the call they are in (its outcome is recorded)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=_JOIN_SECONDS)

    def _loop(self, worker: str) -> None:
        seen = 0
        while True:
            with self._cond:
                while self._generation == seen and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                seen, final = self._generation, self._final
            try:
                while not self._stopped and self._one_call(worker, final=final):
                    pass
            except BaseException as exc:  # raised again on the main thread by check() / finish()
                with self._cond:
                    if self.error is None:
                        self.error = exc
                    self._stopped = True
                    self._cond.notify_all()
                return
            if final:
                return

    def _claim(self, worker: str, *, final: bool) -> list[OutboxItem]:
        with self._claim_lock:
            # While pages come in, only a full batch of what they queued is claimed (the fewest write calls;
            # counted here, not in the store, so writers holding rows do not make the others send partial
            # batches). At the end, whatever is pending goes.
            if not final and self._queued < self._size:
                return []
            if not final and self._defer is not None and self._defer():
                # Helpers claim these rows; counting starts again from here if they leave (no partial batch then).
                self._queued = 0
                return []
            at = self._store.shared_clock(self._clock).now()
            items = self._store.claim_outbox(self._runtime.crm, worker, at, limit=self._size, lease_seconds=self._lease_seconds)
            self._queued = max(0, self._queued - len(items))
        return items

    def _one_call(self, worker: str, *, final: bool) -> bool:
        """Claim one batch, send it, record the outcome; False when there was nothing to send (or nothing went)."""
        items = self._claim(worker, final=final)
        if not items:
            return False
        fence = claim_fence(self._store, worker, self._lease_seconds, self._clock)
        outcomes = send(self._runtime.adapter, items, fence=fence, person_wins=self._runtime.rules.person_wins)
        done = [outcome for outcome in outcomes if outcome[2].error_code != CLAIM_LOST]
        now = self._clock.now()
        self._store.complete_outbox(done, now, max_attempts=self._max_attempts)
        results = [res for _, _, res in done]
        notified = self._notify_dead_letters(results, now)
        with self._cond:
            self._results.extend(results)
            self._notified += notified
        # Everything failed and may be retried: leave it pending until the next page (as a sequential run does).
        return not all(not res.ok and res.retryable for _, _, res in outcomes)

    def _notify_dead_letters(self, results: Sequence[WriteResult], now: Any) -> int:
        if not self._keep_leads:
            return 0
        with self._cond:
            known = {res.record_id: self._leads.pop(res.record_id) for res in results if res.record_id in self._leads}
        given_up = [res for res in results if not res.ok and not res.retryable and res.record_id in known]
        if not given_up:
            return 0
        leads = [known[res.record_id][0] for res in given_up]
        scores = {lead.key: known[lead.id][1] for lead in leads}
        decisions = {lead.key: d for lead in leads if (d := known[lead.id][2]) is not None}
        return notify_dead_letters(self._store, self._runtime, self._engine, leads, scores, decisions, given_up, now)
