"""Lead routing (placeholder until the routing engine lands)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from connector.engine.scoring import ScoringConfig
from connector.errors import ConfigProblem


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def check_routing(cfg: RoutingConfig, scoring: ScoringConfig, path: str) -> list[ConfigProblem]:
    return []
