"""What scoring returns: the outcome over every model, the BANT view, and the stage a CRM should hold for a result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.core.models import Lead, ScoreResult
from connector.engine.scoring.config import StageMap


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    """A lead's score under every model whose audience matched, and the one to write back."""

    primary: ScoreResult
    by_model: Mapping[str, ScoreResult] = field(default_factory=dict)
    # The lead's email or company domain is a configured competitor's. Worked out while scoring
    # (negative-signal rules read it) and handed to routing's context, so it is done once per lead.
    is_competitor: bool = False


@dataclass(frozen=True, slots=True)
class StageTarget:
    """What a CRM should hold for a result (None: nothing configured)."""

    stage: str | None = None
    lead_status: str | None = None
    grade_label: str | None = None


def bant_view(lead: Lead) -> str:
    """hot: all four BANT criteria met; warm: need met but not all four (budget, timeframe or authority missing); cold: otherwise."""
    if lead.need is True:
        if lead.budget is True and lead.authority is True and lead.timeframe is True:
            return "hot"
        return "warm"
    return "cold"


def stage_target(stages: Mapping[str, StageMap], grade: str, is_mql: bool, crm: str, object_type: str) -> StageTarget:
    """The stage / lead status / grade label for a grade (a `crm:object_type` map wins over `crm`).

    Stage: `by_grade[grade]`, else `mql` when the result is an MQL, else `default`.
    """
    smap = stages.get(f"{crm}:{object_type}") or stages.get(crm)
    if smap is None:
        return StageTarget()
    stage = smap.by_grade.get(grade)
    if stage is None and is_mql:
        stage = smap.mql
    if stage is None:
        stage = smap.default
    return StageTarget(stage, smap.lead_status_by_grade.get(grade), smap.grade_labels.get(grade))
