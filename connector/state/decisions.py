"""The decision log: one append-only line per routing, reassignment, score or keep decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from connector.state.db import Database
from connector.state.schema import decisions_t

DecisionKind = Literal["route", "reassign", "score", "keep"]
DECISION_KINDS: tuple[str, ...] = ("route", "reassign", "score", "keep")


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    """One append-only line of the decision log; id is None until stored."""

    id: int | None = None
    lead_key: str
    kind: str  # one of DECISION_KINDS
    owner_id: str | None = None
    rep: str | None = None
    rule: str | None = None
    pool: str | None = None
    strategy: str | None = None
    arm: str | None = None
    score: float | None = None
    grade: str | None = None
    model: str | None = None
    explanation: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime


def _decision(row: sa.Row[Any]) -> DecisionRecord:
    return DecisionRecord(
        id=row.id,
        lead_key=row.lead_key,
        kind=row.kind,
        owner_id=row.owner_id,
        rep=row.rep,
        rule=row.rule,
        pool=row.pool,
        strategy=row.strategy,
        arm=row.arm,
        score=row.score,
        grade=row.grade,
        model=row.model,
        explanation=dict(row.explanation or {}),
        created_at=row.created_at,
    )


def decision_values(rec: DecisionRecord) -> dict[str, Any]:
    """A decision as the column values of its row (without id); an unknown kind is a ValueError."""
    if rec.kind not in DECISION_KINDS:
        raise ValueError(f"decision kind must be one of {', '.join(DECISION_KINDS)}, got {rec.kind!r} (lead {rec.lead_key})")
    return {
        "lead_key": rec.lead_key,
        "kind": rec.kind,
        "owner_id": rec.owner_id,
        "rep": rec.rep,
        "rule": rec.rule,
        "pool": rec.pool,
        "strategy": rec.strategy,
        "arm": rec.arm,
        "score": rec.score,
        "grade": rec.grade,
        "model": rec.model,
        "explanation": dict(rec.explanation),
        "created_at": rec.created_at,
    }


class Decisions:
    """The decisions table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, rec: DecisionRecord) -> int:
        """Append a decision outside routing (e.g. a score-only decision); returns its id."""
        with self._db.write() as conn:
            stmt = sa.insert(decisions_t).values(**decision_values(rec)).returning(decisions_t.c.id)
            return int(conn.execute(stmt).scalar_one())

    def save(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert decision rows (`decision_values` plus their id) in the caller's transaction."""
        self._db.execute_many(conn, "decisions.save", lambda: sa.insert(decisions_t), rows)

    def for_lead(self, lead_key: str) -> list[DecisionRecord]:
        """The lead's decision log, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(decisions_t).where(decisions_t.c.lead_key == lead_key).order_by(decisions_t.c.id))
            return [_decision(r) for r in rows]

    def log(self, *, kinds: Sequence[str] | None = None, since: datetime | None = None, limit: int = 200_000) -> list[DecisionRecord]:
        """The decision log, oldest first (optionally some kinds only, or from `since`)."""
        query = sa.select(decisions_t).order_by(decisions_t.c.id).limit(limit)
        if kinds is not None:
            query = query.where(decisions_t.c.kind.in_(list(kinds)))
        if since is not None:
            query = query.where(decisions_t.c.created_at >= since)
        with self._db.read() as conn:
            return [_decision(r) for r in conn.execute(query)]
