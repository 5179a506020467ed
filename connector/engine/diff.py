"""Plan the smallest write: desired owner/score/grade/stage vs the CRM's values, under the ownership and stage rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.models import FieldDecision, Lead, Patch

SCORE_TOLERANCE = 0.005  # CRMs store scores as strings/decimals; below half a cent is "unchanged"


@dataclass(frozen=True, slots=True)
class Desired:
    """What the engine wants the CRM to hold; None means 'no opinion' (the field is not written)."""

    owner_id: str | None = None
    score: float | None = None
    grade: str | None = None
    stage: str | None = None
    lead_status: str | None = None
    owner_reason: str = ""


@dataclass(frozen=True, slots=True)
class DiffRules:
    """The per-CRM rules diff applies: stage order (forward only) and which fields are written."""

    stage_order: Sequence[str] = ()
    lead_status_order: Sequence[str] = ()
    write_fields: frozenset[str] = frozenset({"owner_id", "score", "grade", "stage", "lead_status"})


def _same(field: str, a: Any, b: Any) -> bool:
    if field == "score":
        if a is None or b is None:
            return a is None and b is None
        try:
            return abs(float(a) - float(b)) < SCORE_TOLERANCE
        except (TypeError, ValueError):
            return False
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return bool(a == b or (a in (None, "") and b in (None, "")))


def _rank(value: str | None, order: Sequence[str]) -> int | None:
    if value in (None, ""):
        return -1
    lowered = [o.lower() for o in order]
    v = str(value).lower()
    return lowered.index(v) if v in lowered else None


def _plan_ordered(field: str, current: Any, want: Any, last_written: Any, was_written: bool, order: Sequence[str]) -> tuple[FieldDecision, str]:
    """Stages move forward only, and a person's stage change after our last write wins (invariants 2 and 5)."""
    if _same(field, current, want):
        return FieldDecision.UNCHANGED, "already at this value"
    if was_written and not _same(field, current, last_written):
        return FieldDecision.STAGE_LOCKED, f"changed by someone else to {current!r} after the connector wrote {last_written!r}"
    if not order:
        if current not in (None, "") and not was_written:
            return FieldDecision.STAGE_LOCKED, f"already set to {current!r} and no order is configured to move it forward"
        return FieldDecision.WRITE, f"set to {want!r}"
    cur_rank, want_rank = _rank(current, order), _rank(want, order)
    if want_rank is None:
        return FieldDecision.NOT_CONFIGURED, f"{want!r} is not in the configured order"
    if cur_rank is None:
        return FieldDecision.STAGE_LOCKED, f"current value {current!r} is not in the configured order; left as is"
    if want_rank <= cur_rank:
        return FieldDecision.WOULD_REGRESS, f"{current!r} is already at or past {want!r}; stages only move forward"
    return FieldDecision.WRITE, f"moves forward from {current!r} to {want!r}"


def plan_write(lead: Lead, desired: Desired, written: Mapping[str, Any], rules: DiffRules) -> Patch:
    """The patch for one lead: only changed fields, owner locks and forward-only stages honoured.

    `written` holds the values the connector last wrote to this lead (empty if never). A field
    whose CRM value differs from what the connector last wrote was changed by a person (or
    another tool) and is not overwritten: owner lock for owner_id, stage lock for stages.
    """
    changes: dict[str, Any] = {}
    current: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    decisions: dict[str, FieldDecision] = {}

    def settle(field: str, decision: FieldDecision, reason: str, value: Any) -> None:
        decisions[field] = decision
        reasons[field] = reason
        if decision is FieldDecision.WRITE:
            changes[field] = value

    for field in ("owner_id", "score", "grade", "stage", "lead_status"):
        want = getattr(desired, field)
        have = getattr(lead, field)
        current[field] = have
        if field not in rules.write_fields or want is None:
            settle(field, FieldDecision.NOT_CONFIGURED, "not written by this configuration", None)
            continue
        was_written = field in written
        if field == "owner_id":
            if _same(field, have, want):
                settle(field, FieldDecision.UNCHANGED, "already owned by this owner", None)
            elif was_written and not _same(field, have, written[field]):
                settle(field, FieldDecision.OWNER_LOCKED, f"owner changed to {have!r} by someone else after the connector assigned {written[field]!r}", None)
            else:
                settle(field, FieldDecision.WRITE, desired.owner_reason or f"assign to {want!r}", want)
        elif field == "stage":
            decision, reason = _plan_ordered(field, have, want, written.get(field), was_written, rules.stage_order)
            settle(field, decision, reason, want)
        elif field == "lead_status":
            decision, reason = _plan_ordered(field, have, want, written.get(field), was_written, rules.lead_status_order)
            settle(field, decision, reason, want)
        elif _same(field, have, want):
            settle(field, FieldDecision.UNCHANGED, "already at this value", None)
        else:
            settle(field, FieldDecision.WRITE, f"{have!r} -> {want!r}", want)

    return Patch(
        crm=lead.crm,
        object_type=lead.object_type,
        record_id=lead.id,
        changes=changes,
        current=current,
        reasons=reasons,
        decisions=decisions,
    )
