"""The outbox's sending side: who claims writes, the claim fence checked before each request, and send()."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from connector.adapters.base import CrmAdapter, WriteFence
from connector.core.clock import Clock
from connector.core.models import Lead, Patch, WriteResult
from connector.engine.diff import PERSON_FIELDS
from connector.state.store import LeadState, OutboxItem, Store

log = logging.getLogger("connector.pipeline")

# A write claimed but not completed by then (its worker was killed mid-write) is claimable by any replica.
OUTBOX_LEASE_SECONDS = 120.0
# Fields a person may change in the CRM [architecture: A person's choice wins]: a write replayed after a crash
# re-checks them first. PERSON_FIELDS (owner, stage, lead status, grade) is the default; [sync] person_wins narrows it.

_worker: tuple[int, str] | None = None


def worker_identity() -> str:
    """This process's name in work claims and leases: "<host>:<pid>:<random>" (new after a fork)."""
    global _worker
    if _worker is None or _worker[0] != os.getpid():
        _worker = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _worker[1]


def with_pending_writes(states: Mapping[str, LeadState], pending: Mapping[str, Mapping[str, Any]]) -> dict[str, LeadState]:
    """Lead states whose written baseline includes writes still in the outbox.

    A write decided but not yet confirmed (its worker was killed after sending it, or it waits for a
    retry) is the connector's value: if the CRM now shows something else, a person changed it, and
    the next batch must neither queue the same write again nor overwrite that person [architecture: A person's choice wins].
    """
    out = dict(states)
    for key, values in pending.items():
        state = out.get(key) or LeadState(lead_key=key)
        out[key] = replace(state, written={**state.written, **values})
    return out


def claim_fence(
    store: Store, worker: str, lease_seconds: float, clock: Clock | None = None
) -> Callable[[Mapping[int, int]], WriteFence]:
    """The check a write request passes right before it leaves: this worker still holds each row's claim.

    A claim's lease runs from when it was taken; a write that then waits for the shared rate limiter
    or a Retry-After can outlive it, and another replica reclaims the row, re-reads the record and
    sends it too. Two senders of one row can overwrite a person's edit made between their writes
    [architecture: A person's choice wins], so each request renews the claims it carries, and drops the rows it lost.
    With `clock`, renewals run on `store.shared_clock(clock)` (PostgreSQL's time), not the adapter's `now`: a
    replica whose clock runs behind would otherwise renew its claim into the past and lose it at once.
    """
    shared = store.shared_clock(clock) if clock is not None else None

    def for_rows(outbox_ids: Mapping[int, int]) -> WriteFence:
        def fence(patches: Sequence[Patch], now: datetime) -> list[bool]:
            ids = [outbox_ids[id(patch)] for patch in patches]
            at = shared.now() if shared is not None else now
            held = store.hold_outbox(ids, worker, at, lease_seconds=lease_seconds)
            return [i in held for i in ids]

        return fence

    return for_rows


def send(
    adapter: CrmAdapter, items: Sequence[OutboxItem], *, fence: Callable[[Mapping[int, int]], WriteFence] | None = None,
    person_wins: frozenset[str] = PERSON_FIELDS,
) -> list[tuple[int, Patch, WriteResult]]:
    """Send claimed writes; (outbox id, patch to record as written, result) for each, in order.

    A reclaimed row (its first worker died after claiming it, or a send failed) may already be in the
    CRM, and a person may have changed the record since: those leads are re-read first. A field the
    CRM already holds as wanted is not sent again; an owner or stage that is neither the value seen at
    decision time nor the connector's is a person's change and is left alone [architecture: A person's choice wins]. Either
    way the decided values become the written baseline, so later diffs see a person's change as one.
    A reclaimed lead the re-read did not return is not sent blind: it stays pending for the next claim.
    `fence` (from claim_fence) gives, for the patches sent, the check run right before each request.
    `person_wins` names the fields where a person's change is kept ([sync] person_wins).
    """
    stale = [item for item in items if item.reclaimed]
    now_in_crm = {lead.id: lead for lead in adapter.fetch_by_ids([i.patch.record_id for i in stale])} if stale else {}
    to_send: list[tuple[OutboxItem, Patch]] = []
    settled: dict[int, WriteResult] = {}
    for item in items:
        patch: Patch | WriteResult = _recheck(item, now_in_crm, person_wins) if item.reclaimed else item.patch
        if isinstance(patch, WriteResult):
            settled[item.id] = patch
        else:
            to_send.append((item, patch))
    patches = [patch for _, patch in to_send]
    check = fence({id(patch): item.id for item, patch in to_send}) if fence is not None else None
    sent = adapter.write(patches, fence=check) if to_send else []
    by_id = {item.id: res for (item, _), res in zip(to_send, sent, strict=True)}
    return [(item.id, item.patch, settled.get(item.id) or by_id[item.id]) for item in items]


def _recheck(item: OutboxItem, now_in_crm: Mapping[str, Lead], person_wins: frozenset[str]) -> Patch | WriteResult:
    """A reclaimed row's patch trimmed to what still needs sending, or its settled result (nothing to send)."""
    patch = item.patch
    lead = now_in_crm.get(patch.record_id)
    if lead is None:
        return WriteResult(
            patch.crm, patch.object_type, patch.record_id, ok=False, retryable=True, error_code="NOT_REREAD",
            message="the record was not returned when re-read before a replayed write; it stays pending",
        )
    fresh = {f: v for f, v in patch.changes.items() if not _settled_in_crm(f, v, getattr(lead, f, None), patch.current.get(f), person_wins)}
    if len(fresh) < len(patch.changes):
        log.info(
            "%s %s %s: replayed write re-checked; not sending %s (already in the CRM or changed by a person)",
            patch.crm, patch.object_type, patch.record_id, ", ".join(sorted(set(patch.changes) - set(fresh))),
        )
    if not fresh:
        return WriteResult(patch.crm, patch.object_type, patch.record_id, ok=True)
    return replace(patch, changes=fresh)


def _settled_in_crm(field: str, want: Any, have: Any, at_decision: Any, person_wins: frozenset[str]) -> bool:
    """True when a replayed write of `field` must not be sent: the CRM already holds it, or a person changed it."""
    if _same_value(have, want):
        return True
    return field in person_wins and not _same_value(have, at_decision)


def _same_value(a: Any, b: Any) -> bool:
    if a in (None, "") or b in (None, ""):
        return a in (None, "") and b in (None, "")
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        try:
            return abs(float(a) - float(b)) < 0.005
        except (TypeError, ValueError):
            return False
    return str(a).strip().lower() == str(b).strip().lower()
