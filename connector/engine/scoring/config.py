"""The `[scoring]` config: models, rules, grades, decay steps, stage maps (pydantic shapes; checks.py checks meaning)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.engine.conditions import Condition

NO_MODEL = "none"  # the model name of a result when no model's audience matched


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GradeBand(_Section):
    """One named band over the score: `min` inclusive, `max` exclusive (default: the `min` of the band above)."""

    name: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None


class DecayStep(_Section):
    """One step of the inactivity ladder: after `days` without activity the lead loses `-points`."""

    days: float = Field(gt=0)
    points: float = Field(le=0)


class Rule(_Section):
    """One scoring rule. Its form follows from its keys:

    - fit: `when` only — `points` once when the lead matches;
    - behaviour: `event` / `kind` / `where` — `points` per matching event (optional `cap`,
      `window_days`, `half_life_days`; `when` then gates the rule on the lead);
    - engagement: `engagement = "COUNTER"` — `points` per unit of `lead.engagement[COUNTER]` (optional `cap`).
    """

    name: str = Field(min_length=1)
    points: float
    when: Condition | None = None
    event: str | list[str] | None = None
    kind: Literal["track", "page", "identify"] | None = None
    where: Condition | None = None
    engagement: str | None = Field(default=None, min_length=1)
    cap: float | None = Field(default=None, gt=0)
    window_days: float | None = Field(default=None, gt=0)
    half_life_days: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> Rule:
        behaviour = self.event is not None or self.kind is not None or self.where is not None
        if behaviour and self.engagement is not None:
            raise ValueError("a rule is either behaviour (event / kind / where) or engagement, not both")
        if not behaviour and self.engagement is None and self.when is None:
            raise ValueError("a rule needs `when` (fit), `event` / `kind` / `where` (behaviour) or `engagement`")
        if not behaviour and (self.window_days is not None or self.half_life_days is not None):
            raise ValueError("window_days and half_life_days apply to behaviour (event) rules only")
        if not behaviour and self.engagement is None and self.cap is not None:
            raise ValueError("cap applies to behaviour and engagement rules (a fit rule scores once)")
        names = [self.event] if isinstance(self.event, str) else self.event
        if names is not None and (not names or any(not n.strip() for n in names)):
            raise ValueError("event needs one or more non-empty event names")
        return self

    @property
    def form(self) -> Literal["fit", "behaviour", "engagement"]:
        if self.engagement is not None:
            return "engagement"
        if self.event is not None or self.kind is not None or self.where is not None:
            return "behaviour"
        return "fit"

    @property
    def event_names(self) -> tuple[str, ...] | None:
        if self.event is None:
            return None
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)


class ModelConfig(_Section):
    """One scoring model (e.g. per product line): who it applies to, its rules and its decay."""

    description: str = ""
    audience: Condition | None = None
    rules: list[Rule] = Field(default_factory=list)
    inactivity: list[DecayStep] = Field(default_factory=list)
    floor: float | None = None
    ceiling: float | None = None


class StageMap(_Section):
    """What one CRM (or `crm:object_type`) should hold for a result: stage, lead status, grade label."""

    by_grade: dict[str, str] = Field(default_factory=dict)
    mql: str | None = None  # stage for an MQL whose grade has no by_grade entry
    default: str | None = None  # stage when neither by_grade nor mql gives one
    lead_status_by_grade: dict[str, str] = Field(default_factory=dict)
    grade_labels: dict[str, str] = Field(default_factory=dict)


class LowIntent(_Section):
    """Signals that alone must never make a lead reach the top grade (checked against rule caps).

    `events` are track-event names (a rule limited to `kind = "page"` or `"identify"` cannot count them).
    """

    events: list[str] = Field(default_factory=lambda: ["Email Opened"])
    engagement: list[str] = Field(default_factory=lambda: ["email_opens"])


def _default_grades() -> list[GradeBand]:
    return [GradeBand(name="hot", min=60), GradeBand(name="warm", min=30), GradeBand(name="cold")]


BantLevel = Literal["hot", "warm", "cold"]


def _default_bant_grades() -> dict[BantLevel, str]:
    return {"hot": "hot", "warm": "warm", "cold": "cold"}


class ScoringConfig(_Section):
    """`[scoring]`: models, grades, MQL, BANT, negative-signal lists, stage mapping. Empty = score 0, lowest grade."""

    write_model: str = "best"
    grades: list[GradeBand] = Field(default_factory=_default_grades, min_length=1)
    mql_threshold: float | None = None
    grade_from: Literal["score", "bant"] = "score"
    bant_grades: dict[BantLevel, str] = Field(default_factory=_default_bant_grades)
    use_shipped_free_mail: bool = True
    free_mail_domains: list[str] = Field(default_factory=list)
    competitor_domains: list[str] = Field(default_factory=list)
    regions: dict[str, list[str]] = Field(default_factory=dict)
    low_intent: LowIntent = Field(default_factory=LowIntent)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    stages: dict[str, StageMap] = Field(default_factory=dict)

