"""Waiting leads: leads no rep is available for yet, why, and who is free first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.state.db import Database, chunks
from connector.state.schema import waiting_leads_t


@dataclass(frozen=True)
class WaitingLead:
    """A lead waiting for an available rep: since when, why, and who is free first, when (None: not known)."""

    lead_key: str
    crm: str
    since: datetime
    checked_at: datetime
    cause: str | None
    pool: str | None
    next_available_at: datetime | None
    next_available_rep: str | None
    reason: str


class WaitingLeads:
    """The waiting_leads table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, crm: str | None = None, *, lead_key: str | None = None) -> list[WaitingLead]:
        """Why and since when leads wait for a rep (one CRM's, one lead, or all), longest waiting first."""
        query = sa.select(waiting_leads_t).order_by(waiting_leads_t.c.since, waiting_leads_t.c.lead_key)
        if crm is not None:
            query = query.where(waiting_leads_t.c.crm == crm)
        if lead_key is not None:
            query = query.where(waiting_leads_t.c.lead_key == lead_key)
        with self._db.read() as conn:
            return [
                WaitingLead(
                    lead_key=r.lead_key, crm=r.crm, since=r.since, checked_at=r.checked_at, cause=r.cause, pool=r.pool,
                    next_available_at=r.next_available_at, next_available_rep=r.next_available_rep, reason=r.reason,
                )
                for r in conn.execute(query)
            ]

    def save(self, conn: sa.Connection, waiting: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Per lead key: its waiting row to upsert (`since` stays that of the first wait), or None: no longer waiting."""
        gone = sorted(key for key, row in waiting.items() if row is None)
        for keys in chunks(gone):
            conn.execute(sa.delete(waiting_leads_t).where(waiting_leads_t.c.lead_key.in_(keys)))
        rows = [row for _, row in sorted(waiting.items()) if row is not None]
        for chunk in chunks(rows, 200):
            stmt = self._db.insert(waiting_leads_t).values(list(chunk))
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["lead_key"],
                    set_={c: stmt.excluded[c] for c in ("crm", "checked_at", "cause", "pool", "next_available_at", "next_available_rep", "reason")},
                )
            )
