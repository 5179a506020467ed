"""A lead that waits: why nobody can take it now (the dominant cause) and who is free first, when; as a sentence."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from connector.core.keys import OPEN_SCOPE
from connector.core.models import WAIT_CAUSES, Candidate, WaitCause
from connector.engine.routing.availability import load_zone
from connector.engine.routing.compile import next_day_start
from connector.engine.routing.reps import is_full
from connector.engine.routing.snapshot import AvailabilitySnapshot, RoutingContext
from connector.engine.routing.state import RoutingState, read_counters


def wait_until(
    candidates: Sequence[Candidate], crm: str, ctx: RoutingContext, snap: AvailabilitySnapshot, state: RoutingState,
    exclude: Collection[str] = frozenset(),
) -> tuple[WaitCause, datetime | None, str | None]:
    """Why nobody among `candidates` can take a lead of `crm` at `snap.now`, and who is free first, when.

    The cause is the most common one among the candidates (ties: the order of WAIT_CAUSES). The
    checks follow the picker's order: inactive, schedule (out of office, holiday, working hours), owner
    id in the CRM, capacity, then skills and tier; a rep who had the lead already (`exclude`, SLA
    reassignment) is never its next owner, so it counts as not eligible. A schedule frees a
    rep at their next working instant; a leads-per-day cap at the next routing day (and their
    schedule then); an open-leads cap has no known time, nor has a rep who lacks a skill.
    """
    counters = read_counters(state)
    empty: Mapping[str, int] = {}
    open_counts = counters.get(OPEN_SCOPE, empty)
    day_counts = counters.get(snap.day, empty)
    causes: dict[WaitCause, int] = {}
    best: tuple[datetime, str] | None = None
    for cand in candidates:
        if cand.eligible:
            continue
        email = cand.rep
        rep = snap.rep(email)
        at: datetime | None = None
        cause: WaitCause
        if rep is None or not rep.is_active:
            cause = "inactive"
        elif exclude and (email in exclude or rep.owner_ids.get(crm) in exclude):
            cause = "no_one_eligible"  # had the lead already: never its next owner
        else:
            owner_id = rep.owner_ids.get(crm)
            open_full = is_full(open_counts.get(email, 0), rep.max_open_leads)
            day_full = is_full(day_counts.get(email, 0), rep.max_leads_per_day)
            away, free = snap.free_at(email, rep)
            if away is not None:
                cause = away
                if open_full:
                    free = None
                elif day_full and free is not None and free < next_day_start(snap.compiled, snap.now):
                    free = snap.free_at(email, rep, next_day=True)[1]
                at = free
            elif owner_id is None or (ctx.known_owner_ids is not None and owner_id not in ctx.known_owner_ids):
                cause = "inactive"
            elif open_full:
                cause = "at_capacity"
            elif day_full:
                cause, at = "at_capacity", snap.free_at(email, rep, next_day=True)[1]
            else:
                cause = "no_one_eligible"
        causes[cause] = causes.get(cause, 0) + 1
        if at is not None and (best is None or at < best[0]):
            best = (at, email)
    order = list(WAIT_CAUSES)
    dominant = min(causes, key=lambda c: (-causes[c], order.index(c))) if causes else "no_one_eligible"
    return dominant, best[0] if best else None, best[1] if best else None


def wait_sentence(pools: Sequence[str], cause: WaitCause, at: datetime | None, who: str | None, snap: AvailabilitySnapshot) -> str:
    """Why and until when, as people read it: `nobody in pool 'smb' is available (outside working hours); next
    available: ben@x at Mon 09:00 America/New_York (2026-12-07T14:00Z)` (the rep's local time, then UTC)."""
    names = " or ".join(repr(p) for p in pools)
    text = f"nobody in pool{'s' if len(pools) > 1 else ''} {names} is available ({WAIT_CAUSES[cause]})"
    if at is None or who is None:
        if cause == "at_capacity":
            return text + "; next available: when a rep's open leads close (max_open_leads)"
        return text + "; next available: unknown"
    rep = snap.rep(who)
    zone = snap.schedule(who, rep).timezone if rep is not None else load_zone("UTC")
    return text + f"; next available: {who} at {at.astimezone(zone):%a %H:%M} {zone.key} ({at.astimezone(UTC):%Y-%m-%dT%H:%MZ})"
