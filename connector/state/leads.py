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


def _row(
    key: str, routed: Mapping[str, Any] | None, merged: tuple[dict[str, Any], datetime] | None, written: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One lead's lead_states row for LeadStates.save: what was routed and the merged written values, when any."""
    return {
        "lead_key": key,
        "routed_owner_id": routed["routed_owner_id"] if routed else None,
        "routed_rep": routed["routed_rep"] if routed else None,
        "routed_at": routed["routed_at"] if routed else None,
        "reassignments": routed["reassignments"] if routed else 0,
        "sla_due_at": routed["sla_due_at"] if routed else None,
        "initial_status": routed["initial_status"] if routed else None,
        "written": {**(written or {}), **merged[0]} if merged else {},
        "written_at": merged[1] if merged else None,
    }


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

    def save(
        self, conn: sa.Connection, routed: Mapping[str, Mapping[str, Any]],
        remembered: Sequence[tuple[str, Mapping[str, Any], datetime]] = (),
    ) -> None:
        """Upsert routing outcomes and merge written values: one row write per lead, in lead key order.

        `routed`: lead key -> routed_owner_id, routed_rep, routed_at, sla_due_at, initial_status and reassignments
        (this transaction's count: reassignments add up, a known initial status stays). `remembered`: (lead key,
        values, now) merged into LeadState.written in order. A lead in both is written once, not twice (issue 18).
        """
        merged: dict[str, tuple[dict[str, Any], datetime]] = {}
        for key, values, now in remembered:
            known = merged.get(key)
            merged[key] = ({**known[0], **values} if known else dict(values), now)
        keys = sorted(routed.keys() | merged.keys())  # one lock order for every writer of lead_states
        for chunk in chunks(keys):
            current: dict[str, Any] = {}
            reading = [k for k in chunk if k in merged]
            if reading:
                query = sa.select(lead_states_t.c.lead_key, lead_states_t.c.written).where(lead_states_t.c.lead_key.in_(reading))
                current = {row.lead_key: row.written for row in conn.execute(query)}
            rows = [_row(k, routed.get(k), merged.get(k), current.get(k)) for k in chunk]
            self._db.execute_many(conn, "lead_states.save", self._upsert, rows)

    def _upsert(self) -> Any:
        # A row leaves what it does not carry as it is: routed_at NULL = not routed in this transaction (set_routed
        # always gives a time), written_at NULL = no written values; a new row gets written {} and no owner.
        stmt = self._db.insert(lead_states_t)
        new, old = stmt.excluded, lead_states_t.c

        def routed(column: str) -> Any:
            return sa.case((new.routed_at.is_(None), old[column]), else_=new[column])

        return stmt.on_conflict_do_update(
            index_elements=["lead_key"],
            set_={
                **{c: routed(c) for c in ("routed_owner_id", "routed_rep", "routed_at", "sla_due_at")},
                "reassignments": old.reassignments + new.reassignments,
                "initial_status": sa.func.coalesce(new.initial_status, old.initial_status),
                "written": sa.case((new.written_at.is_(None), old.written), else_=new.written),
                "written_at": sa.func.coalesce(new.written_at, old.written_at),
            },
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
