"""Lead states: what the connector decided and wrote for each lead (owner, written values, SLA clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.state.db import Database, chunks
from connector.state.schema import lead_states_t


@dataclass(frozen=True)
class LeadState:
    """What the connector decided and wrote for one lead."""

    lead_key: str
    routed_owner_id: str | None = None
    routed_rep: str | None = None
    routed_at: datetime | None = None
    written: Mapping[str, Any] = field(default_factory=dict)
    written_at: datetime | None = None
    reassignments: int = 0
    sla_due_at: datetime | None = None
    initial_status: str | None = None


def _lead_state(row: sa.Row[Any]) -> LeadState:
    return LeadState(
        lead_key=row.lead_key,
        routed_owner_id=row.routed_owner_id,
        routed_rep=row.routed_rep,
        routed_at=row.routed_at,
        written=dict(row.written or {}),
        written_at=row.written_at,
        reassignments=row.reassignments,
        sla_due_at=row.sla_due_at,
        initial_status=row.initial_status,
    )


class LeadStates:
    """The lead_states table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def read(self, conn: sa.Connection, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        """States of these leads, inside the caller's transaction; others are absent."""
        out: dict[str, LeadState] = {}
        for chunk in chunks(list(dict.fromkeys(lead_keys))):
            for row in conn.execute(sa.select(lead_states_t).where(lead_states_t.c.lead_key.in_(chunk))):
                out[row.lead_key] = _lead_state(row)
        return out

    def get(self, lead_keys: Sequence[str]) -> dict[str, LeadState]:
        """States of the leads the connector has routed or written; others are absent."""
        with self._db.read() as conn:
            return self.read(conn, lead_keys)

    def past_sla(self, now: datetime, limit: int = 1000) -> list[LeadState]:
        """Routed leads whose SLA deadline has passed (earliest first), for SLA reassignment."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(lead_states_t)
                .where(lead_states_t.c.sla_due_at.is_not(None), lead_states_t.c.sla_due_at <= now)
                .order_by(lead_states_t.c.sla_due_at, lead_states_t.c.lead_key)
                .limit(limit)
            )
            return [_lead_state(r) for r in rows]

    def clear_sla(self, lead_keys: Sequence[str]) -> None:
        """Stop the SLA clock of leads that were actioned."""
        with self._db.write() as conn:
            for chunk in chunks(list(lead_keys)):
                conn.execute(sa.update(lead_states_t).where(lead_states_t.c.lead_key.in_(chunk)).values(sla_due_at=None))

    def save_routed(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert routing outcomes (rows sorted by lead key); reassignments add up, a known initial status stays."""
        if not rows:
            return
        # One cached statement run as executemany: a multi-row VALUES list is compiled afresh for every
        # batch, which cost more than the SQL itself (issue 18 profile).
        stmt = self._db.insert(lead_states_t)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["lead_key"],
                set_={
                    "routed_owner_id": stmt.excluded.routed_owner_id,
                    "routed_rep": stmt.excluded.routed_rep,
                    "routed_at": stmt.excluded.routed_at,
                    "reassignments": lead_states_t.c.reassignments + stmt.excluded.reassignments,
                    "sla_due_at": stmt.excluded.sla_due_at,
                    "initial_status": sa.func.coalesce(stmt.excluded.initial_status, lead_states_t.c.initial_status),
                },
            ),
            [dict(row) for row in rows],
        )

    def merge_written(self, conn: sa.Connection, entries: Sequence[tuple[str, Mapping[str, Any], datetime]]) -> None:
        """Merge (lead key, values, now) into LeadState.written in order: one read and one upsert per chunk of leads."""
        merged: dict[str, tuple[dict[str, Any], datetime]] = {}
        for key, values, now in entries:
            known = merged.get(key)
            merged[key] = ({**known[0], **values} if known else dict(values), now)
        keys = sorted(merged)  # one lock order for every writer of lead_states
        for chunk in chunks(keys, 200):
            query = sa.select(lead_states_t.c.lead_key, lead_states_t.c.written).where(lead_states_t.c.lead_key.in_(chunk))
            current = {row.lead_key: row.written for row in conn.execute(query)}
            rows = [
                {"lead_key": k, "written": {**(current.get(k) or {}), **merged[k][0]}, "written_at": merged[k][1], "reassignments": 0}
                for k in chunk
            ]
            stmt = self._db.insert(lead_states_t)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["lead_key"], set_={"written": stmt.excluded.written, "written_at": stmt.excluded.written_at}
                ),
                rows,
            )

    def owner_counts(self) -> dict[str, int]:
        """Routed leads per owner id (reports, least-loaded)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(lead_states_t.c.routed_owner_id, sa.func.count())
                .where(lead_states_t.c.routed_owner_id.is_not(None))
                .group_by(lead_states_t.c.routed_owner_id)
            )
            return {owner: int(n) for owner, n in rows}

    def count(self, prefix: str = "") -> int:
        """Leads the connector has routed or written (whose key starts with `prefix`, e.g. "hubspot:contacts:")."""
        query = sa.select(sa.func.count()).select_from(lead_states_t)
        if prefix:
            query = query.where(lead_states_t.c.lead_key.startswith(prefix, autoescape=True))
        with self._db.read() as conn:
            return int(conn.scalar(query) or 0)
