"""Plan the smallest write: desired owner/score/grade/stage vs the CRM's values, under the ownership and stage rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.engine.scoring import frozen_builder
from connector.core.models import FieldDecision, Lead, Patch

SCORE_TOLERANCE = 0.005  # CRMs store scores as strings/decimals; below half a cent is "unchanged"
# Fields where a person's value set after the connector's last write is kept ([sync] person_wins names
# them as owner, stage, grade; stage covers the lead status too). The score is never among them: it is ours.
PERSON_FIELDS = frozenset({"owner_id", "stage", "lead_status", "grade"})
PERSON_WINS_FIELDS = {"owner": ("owner_id",), "stage": ("stage", "lead_status"), "grade": ("grade",)}


def person_fields(names: Iterable[str]) -> frozenset[str]:
    """The Lead attributes a `[sync] person_wins` list protects ("stage" covers stage and lead status)."""
    return frozenset(attr for name in names for attr in PERSON_WINS_FIELDS[name])


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
    """The per-CRM rules diff applies: stage order (forward only), which fields are written, and where a person wins."""

    stage_order: Sequence[str] = ()
    lead_status_order: Sequence[str] = ()
    write_fields: frozenset[str] = frozenset({"owner_id", "score", "grade", "stage", "lead_status"})
    # Fields whose value set by a person after our last write is kept (see person_fields); "score" is ignored.
    person_wins: frozenset[str] = PERSON_FIELDS
    # lower-cased value -> position in the order (its first one), worked out once instead of per lead
    stage_rank: Mapping[str, int] = field(init=False, repr=False, compare=False)
    lead_status_rank: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_rank", _ranks(self.stage_order))
        object.__setattr__(self, "lead_status_rank", _ranks(self.lead_status_order))


def _ranks(order: Sequence[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for i, value in enumerate(order):
        ranks.setdefault(value.lower(), i)
    return ranks


def _rank(value: str | None, ranks: Mapping[str, int]) -> int | None:
    if value in (None, ""):
        return -1
    return ranks.get(str(value).lower())


def _plan_ordered(
    current: Any, want: Any, last_written: Any, was_written: bool, ranks: Mapping[str, int], person_wins: bool
) -> tuple[FieldDecision, str]:
    """Stages move forward only, and a person's stage change after our last write wins (when `person_wins`).

    [architecture: Stages move forward] [architecture: A person's choice wins]
    """
    if _same_value(current, want):
        return FieldDecision.UNCHANGED, "already at this value"
    if was_written and person_wins and not _same_value(current, last_written):
        return FieldDecision.STAGE_LOCKED, f"changed by someone else to {current!r} after the connector wrote {last_written!r}"
    if not ranks:
        if current not in (None, "") and not was_written:
            return FieldDecision.STAGE_LOCKED, f"already set to {current!r} and no order is configured to move it forward"
        return FieldDecision.WRITE, f"set to {want!r}"
    cur_rank, want_rank = _rank(current, ranks), _rank(want, ranks)
    if want_rank is None:
        return FieldDecision.NOT_CONFIGURED, f"{want!r} is not in the configured order"
    if cur_rank is None:
        return FieldDecision.STAGE_LOCKED, f"current value {current!r} is not in the configured order; left as is"
    if want_rank <= cur_rank:
        return FieldDecision.WOULD_REGRESS, f"{current!r} is already at or past {want!r}; stages only move forward"
    return FieldDecision.WRITE, f"moves forward from {current!r} to {want!r}"


_patch = frozen_builder(Patch)
_NOT_WRITTEN = (FieldDecision.NOT_CONFIGURED, "not written by this configuration")
_WRITE = FieldDecision.WRITE
_UNCHANGED = FieldDecision.UNCHANGED


def _same_score(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return abs(float(a) - float(b)) < SCORE_TOLERANCE
    except (TypeError, ValueError):
        return False


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return bool(a == b or (a in (None, "") and b in (None, "")))


def _plan_grade(have: Any, want: Any, written: Mapping[str, Any], rules: DiffRules) -> tuple[FieldDecision, str]:
    """The grade is ours to set, but a grade a person set after our last write is kept when "grade" is in person_wins.

    [architecture: A person's choice wins]
    """
    if want is None or "grade" not in rules.write_fields:
        return _NOT_WRITTEN
    if _same_value(have, want):
        return _UNCHANGED, "already at this value"
    if "grade" in written and "grade" in rules.person_wins and not _same_value(have, written["grade"]):
        return FieldDecision.GRADE_LOCKED, f"grade changed to {have!r} by someone else after the connector wrote {written['grade']!r}"
    return _WRITE, f"{have!r} -> {want!r}"


def plan_write(lead: Lead, desired: Desired, written: Mapping[str, Any], rules: DiffRules) -> Patch:
    """The patch for one lead: only changed fields, owner locks and forward-only stages honoured.

    `written` holds the values the connector last wrote to this lead (empty if never). A field
    whose CRM value differs from what the connector last wrote was changed by a person (or
    another tool) and is not overwritten when it is in `rules.person_wins`: owner lock for owner_id,
    grade lock for the grade, stage lock for stages. The score is always the connector's.
    """
    # Field by field in WRITABLE_FIELDS order (owner_id, score, grade, stage, lead_status), unrolled:
    # this runs once per lead of every batch.
    changes: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    decisions: dict[str, FieldDecision] = {}
    fields = rules.write_fields
    have_owner, have_score, have_grade, have_stage, have_status = lead.owner_id, lead.score, lead.grade, lead.stage, lead.lead_status
    current = {"owner_id": have_owner, "score": have_score, "grade": have_grade, "stage": have_stage, "lead_status": have_status}

    want: Any = desired.owner_id
    if want is None or "owner_id" not in fields:
        decisions["owner_id"], reasons["owner_id"] = _NOT_WRITTEN
    elif _same_value(have_owner, want):
        decisions["owner_id"], reasons["owner_id"] = _UNCHANGED, "already owned by this owner"
    elif "owner_id" in written and "owner_id" in rules.person_wins and not _same_value(have_owner, written["owner_id"]):
        decisions["owner_id"] = FieldDecision.OWNER_LOCKED
        reasons["owner_id"] = f"owner changed to {have_owner!r} by someone else after the connector assigned {written['owner_id']!r}"
    else:
        decisions["owner_id"], reasons["owner_id"] = _WRITE, desired.owner_reason or f"assign to {want!r}"
        changes["owner_id"] = want

    want = desired.score
    if want is None or "score" not in fields:
        decisions["score"], reasons["score"] = _NOT_WRITTEN
    elif _same_score(have_score, want):
        decisions["score"], reasons["score"] = _UNCHANGED, "already at this value"
    else:
        decisions["score"], reasons["score"] = _WRITE, f"{have_score!r} -> {want!r}"
        changes["score"] = want

    decisions["grade"], reasons["grade"] = _plan_grade(have_grade, desired.grade, written, rules)
    if decisions["grade"] is _WRITE:
        changes["grade"] = desired.grade

    for name, have, want, order in (
        ("stage", have_stage, desired.stage, rules.stage_rank),
        ("lead_status", have_status, desired.lead_status, rules.lead_status_rank),
    ):
        if want is None or name not in fields:
            decisions[name], reasons[name] = _NOT_WRITTEN
            continue
        decision, reason = _plan_ordered(have, want, written.get(name), name in written, order, name in rules.person_wins)
        decisions[name], reasons[name] = decision, reason
        if decision is _WRITE:
            changes[name] = want

    return _patch(lead.crm, lead.object_type, lead.id, changes, current, reasons, decisions)
