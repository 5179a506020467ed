"""Lead scoring (placeholder until the scoring engine lands)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from connector.errors import ConfigProblem


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def check_scoring(cfg: ScoringConfig, path: str) -> list[ConfigProblem]:
    return []
