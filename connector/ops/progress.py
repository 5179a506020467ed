"""Backfill progress: a live bar (records, rate, ETA, API budget left) on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from connector.adapters.base import CrmAdapter
    from connector.config import Settings
    from connector.core.clock import Clock
    from connector.pipeline.batch import BatchResult
    from connector.runners.jobs import RunSummary
    from connector.state.store import Store

BudgetLeft = Callable[[str], int | None]


class BackfillProgress:
    """The `on_batch(crm, batch, summary)` callback of jobs.backfill, drawing progress to stderr.

    `expected` (crm → about how many leads) gives the bar its end and the ETA; without it the
    bar and ETA stay open-ended. `budget_left(crm)` reads the account's shared daily budget.
    Plain mode prints a line at most every `every_seconds` (0: after every batch).
    """

    def __init__(
        self,
        *,
        live: bool,
        expected: Mapping[str, int | None],
        budget_left: BudgetLeft,
        stream: IO[str] | None = None,
        every_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live = live
        self.expected = dict(expected)
        self._budget_left = budget_left
        self._monotonic = monotonic
        self._every = every_seconds
        self._stream = stream
        self._started = monotonic()
        self._last_line = float("-inf")
        self._done: dict[str, int] = {}
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self.lines: list[str] = []

    def __enter__(self) -> BackfillProgress:
        if self.live:
            # rich is imported for the bar only: plain lines don't need it, and its import is ~45 ms of a start-up (issue 18).
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            console = Console(file=self._stream, stderr=self._stream is None, force_terminal=True if self._stream is not None else None)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[budget]}"), console=console, transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._done:
            self._emit(self._monotonic(), final=True)

    def _rate(self, now: float) -> float:
        elapsed = max(1e-9, now - self._started)
        return sum(self._done.values()) / elapsed

    def _eta_seconds(self, crm: str, now: float) -> float | None:
        total = self.expected.get(crm)
        done = self._done.get(crm, 0)
        rate = self._rate(now)
        if total is None or rate <= 0:
            return None
        return max(0.0, (total - done) / rate)

    def __call__(self, crm: str, batch: BatchResult, summary: RunSummary) -> None:
        self._done[crm] = self._done.get(crm, 0) + batch.fetched
        now = self._monotonic()
        left = self._budget_left(crm)
        budget = f"API budget left {left:,}" if left is not None else ""
        if self._progress is not None:
            if crm not in self._tasks:
                self._tasks[crm] = self._progress.add_task(f"backfill {crm}", total=self.expected.get(crm), rate="", budget="")
            task = self._tasks[crm]
            total = self.expected.get(crm)
            if total is not None and self._done[crm] > total:
                # The estimate was low (new leads since the last run): grow the bar rather than overflow it.
                self._progress.update(task, total=self._done[crm])
            self._progress.update(task, completed=self._done[crm], rate=f"{self._rate(now):.1f} leads/s", budget=budget)
            return
        if now - self._last_line >= self._every:
            self._last_line = now
            self._emit(now, crm=crm, budget=budget)

    def _emit(self, now: float, *, crm: str | None = None, budget: str = "", final: bool = False) -> None:
        for name, done in self._done.items():
            if crm is not None and name != crm:
                continue
            total = self.expected.get(name)
            eta = self._eta_seconds(name, now)
            parts = [
                f"backfill {name}: {done} leads" + (f" of about {total}" if total else ""),
                f"{self._rate(now):.1f} leads/s",
                "done" if final else (f"ETA {eta:.0f}s" if eta is not None else "ETA unknown"),
            ]
            if budget:
                parts.append(budget)
            line = ", ".join(parts)
            self.lines.append(line)
            # sys.stderr looked up now, not at construction: a caller (click's test runner) may have swapped it since.
            out = self._stream if self._stream is not None else sys.stderr
            out.write(line + "\n")
            out.flush()


def backfill_progress(
    settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock, *, limit: int | None, as_json: bool,
) -> BackfillProgress:
    """A live bar on a terminal; plain lines on stderr when not a TTY or with --json (stdout stays one JSON object)."""
    from connector.core.keys import lead_key_prefix
    from connector.state.ratelimit import guard_factory

    guard_for = guard_factory(store, settings, clock)
    budgets = {crm: guard_for(crm).budget for crm in adapters}
    # The size is only known afterwards: --limit, or the leads this store has already seen, makes the ETA.
    expected = {crm: limit or store.count_lead_states(lead_key_prefix(crm, a.object_type)) or None for crm, a in adapters.items()}
    live = sys.stderr.isatty() and not as_json
    return BackfillProgress(live=live, expected=expected, budget_left=lambda crm: budgets[crm].remaining())
