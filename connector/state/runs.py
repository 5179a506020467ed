"""Runs: the summary of every sync, backfill and service cycle, newest first for `connector status`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.state.db import Database
from connector.state.schema import runs_t


class Runs:
    """The runs table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, kind: str, summary: Mapping[str, Any], now: datetime) -> None:
        """Append one run's summary."""
        with self._db.write() as conn:
            conn.execute(sa.insert(runs_t).values(kind=kind, summary=dict(summary), created_at=now))

    def last(self, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first: {"id", "kind", "summary", "created_at"}."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(runs_t).order_by(runs_t.c.id.desc()).limit(limit))
            return [{"id": r.id, "kind": r.kind, "summary": dict(r.summary), "created_at": r.created_at} for r in rows]
