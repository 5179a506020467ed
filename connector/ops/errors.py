"""`connector errors`: list, show, retry and discard dead letters — what failed, where, why and how often."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from connector.core.keys import lead_key
from connector.adapters.base import CrmAdapter
from connector.core.clock import Clock
from connector.config import Settings
from connector.core.errors import UsageError
from connector.runners.jobs import compile_engine, prepare
from connector.core.models import FetchPage
from connector.pipeline.batch import run_batch
from connector.state.store import DeadLetter, Store

RetryOutcome = Literal["resolved", "failed", "not_found", "exhausted", "skipped"]


@dataclass(frozen=True)
class RetryResult:
    """What one retry did to one dead letter."""

    id: int
    outcome: RetryOutcome
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "detail": self.detail}


def dead_letter_json(d: DeadLetter, *, with_payload: bool = False) -> dict[str, Any]:
    """A dead letter as JSON: where (crm, object, record id, field), why (code, message), how often."""
    data: dict[str, Any] = {
        "id": d.id, "status": d.status, "crm": d.crm, "object": d.object_type, "record_id": d.record_id,
        "field": d.field, "code": d.code, "message": d.message, "attempts": d.attempts,
        "first_seen": d.first_seen.astimezone(UTC).isoformat(), "last_seen": d.last_seen.astimezone(UTC).isoformat(),
    }
    if with_payload:
        data["payload"] = dict(d.payload)
    return data


def pick(store: Store, ids: Sequence[int], *, every_open: bool) -> list[DeadLetter]:
    """The dead letters named by id (unknown ids are a usage error), or every open one."""
    if every_open:
        return store.list_dead_letters("open", limit=100_000)
    if not ids:
        raise UsageError("name one or more dead-letter ids, or pass --all")
    found = []
    for i in ids:
        letter = store.get_dead_letter(i)
        if letter is None:
            raise UsageError(f"no dead letter with id {i} (see `connector errors list --status all`)")
        found.append(letter)
    return found


def _still_failing(store: Store, letter: DeadLetter, since: datetime) -> DeadLetter | None:
    for d in store.list_dead_letters("open", limit=100_000):
        if (d.crm, d.object_type, d.record_id) == (letter.crm, letter.object_type, letter.record_id) and d.last_seen >= since:
            return d
    return None


def retry(
    settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock, letters: Sequence[DeadLetter], *, force: bool = False,
) -> list[RetryResult]:
    """Re-read each record from its CRM and run it through the pipeline again.

    Resolved when its write goes through (or nothing needs writing any more); otherwise it stays
    open with one attempt more. Letters at [sync] max_dead_letter_attempts are not retried unless
    `force`: never retried forever [architecture: Bad records don't block good ones].
    """
    results: list[RetryResult] = []
    limit = settings.sync.max_dead_letter_attempts
    todo: list[DeadLetter] = []
    for letter in letters:
        if letter.status in ("resolved", "discarded"):
            results.append(RetryResult(letter.id, "skipped", f"already {letter.status}"))
        elif letter.crm not in adapters:
            results.append(RetryResult(letter.id, "skipped", f"{letter.crm} is not enabled in this configuration"))
        elif letter.attempts >= limit and not force:
            results.append(RetryResult(
                letter.id, "exhausted",
                f"tried {letter.attempts} times ([sync] max_dead_letter_attempts = {limit}); fix the record and use --force, or discard it",
            ))
        else:
            todo.append(letter)
    if not todo:
        return results
    engine = compile_engine(settings)
    runtimes = prepare(settings, {crm: adapters[crm] for crm in sorted({d.crm for d in todo})}, bootstrap=False)
    for letter in todo:
        runtime = runtimes[letter.crm]
        now = clock.now()
        store.set_dead_letter_status(letter.id, "retrying", now)
        leads = runtime.adapter.fetch_by_ids([letter.record_id])
        if not leads:
            store.add_dead_letter(
                crm=letter.crm, object_type=letter.object_type, record_id=letter.record_id, field=letter.field, code=letter.code,
                message=f"retry: {letter.crm} {letter.object_type} {letter.record_id} was not found (deleted or merged away); "
                        f"earlier: {letter.message}",
                payload=letter.payload, now=now,
            )
            results.append(RetryResult(letter.id, "not_found", f"{letter.crm} {letter.object_type} {letter.record_id} no longer exists; discard it"))
            continue
        run_batch(store, runtime, engine, FetchPage(leads=tuple(leads), cursor=None), now, clock=clock)
        again = _still_failing(store, letter, now)
        if again is None:
            store.set_dead_letter_status(letter.id, "resolved", clock.now())
            results.append(RetryResult(letter.id, "resolved", "re-read and written back (or nothing left to write)"))
        else:
            if again.id != letter.id:
                # It failed for another reason: that is a new dead letter; this one is superseded.
                store.set_dead_letter_status(letter.id, "resolved", clock.now())
            results.append(RetryResult(letter.id, "failed", f"still failing: {again.code or 'error'}: {again.message} (dead letter {again.id}, attempt {again.attempts})"))
    return results


def discard(store: Store, letters: Sequence[DeadLetter], now: datetime) -> list[int]:
    """Mark dead letters discarded (kept for the record, never retried); returns their ids."""
    for letter in letters:
        store.set_dead_letter_status(letter.id, "discarded", now)
    return [d.id for d in letters]


def render_list(letters: Sequence[DeadLetter], console: Console | None = None) -> None:
    """Two lines per dead letter (readable at any terminal width): where and how often, then why."""
    console = console or Console()
    if not letters:
        console.print("no dead letters")
        return
    for d in letters:
        where = lead_key(d.crm, d.object_type, d.record_id) + (f" field {d.field}" if d.field else "")
        seen = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}, first {d.first_seen:%Y-%m-%d %H:%M}, last {d.last_seen:%Y-%m-%d %H:%M} UTC"
        console.print(f"[bold]#{d.id}[/] {d.status:<9} {where}  {d.code or '(no code)'}  ({seen})", highlight=False, soft_wrap=True)
        console.print(f"    {d.message}", highlight=False, soft_wrap=True)
    console.print(f"{len(letters)} dead letter(s); `connector errors show ID` for the failed write, `retry ID` or `discard ID`.", highlight=False)


def render_one(d: DeadLetter, console: Console | None = None) -> None:
    console = console or Console()
    data = dead_letter_json(d, with_payload=True)
    table = Table(show_header=False, box=None, title=f"dead letter {d.id}")
    for key, value in data.items():
        if key != "payload":
            table.add_row(key, "" if value is None else str(value))
    console.print(table)
    changes = d.payload.get("changes") if isinstance(d.payload, Mapping) else None
    if changes:
        console.print("the write that failed: " + ", ".join(f"{k} → {v!r}" for k, v in changes.items()))
