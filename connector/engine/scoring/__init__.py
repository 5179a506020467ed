"""Lead scoring (pure): the `[scoring]` config and its checks, compilation to a generated scorer, event aggregates, `score_lead`.

Where to start: config.py (the shapes), compile.py (what a config becomes), generate.py (the one scoring
path, hot and explaining), decay.py (fading, caps, inactivity), aggregates.py (events folded per rule).
"""

from __future__ import annotations

from connector.engine.scoring.aggregates import (
    EventAggregates,
    RuleAggregate,
    aggregate_events,
    aggregates_from_json,
    aggregates_to_json,
    fold_events,
    merge_aggregates,
    update_aggregates,
)
from connector.engine.scoring.checks import check_scoring
from connector.engine.scoring.compile import compile_scoring
from connector.engine.scoring.compiled import CompiledModel, CompiledScoring, EngagementRule, EventRule, FitRule
from connector.engine.scoring.config import (
    NO_MODEL,
    DecayStep,
    GradeBand,
    LowIntent,
    ModelConfig,
    Rule,
    ScoringConfig,
    StageMap,
)
from connector.engine.scoring.frozen import frozen_builder
from connector.engine.scoring.outcome import ScoreOutcome, StageTarget, bant_view
from connector.engine.scoring.score import desired_stage, score_lead

__all__ = [
    "NO_MODEL",
    "CompiledModel",
    "CompiledScoring",
    "DecayStep",
    "EngagementRule",
    "EventAggregates",
    "EventRule",
    "FitRule",
    "GradeBand",
    "LowIntent",
    "ModelConfig",
    "Rule",
    "RuleAggregate",
    "ScoreOutcome",
    "ScoringConfig",
    "StageMap",
    "StageTarget",
    "aggregate_events",
    "aggregates_from_json",
    "aggregates_to_json",
    "bant_view",
    "check_scoring",
    "compile_scoring",
    "desired_stage",
    "fold_events",
    "frozen_builder",
    "merge_aggregates",
    "score_lead",
    "update_aggregates",
]
