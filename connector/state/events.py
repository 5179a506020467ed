"""Behaviour events (visits, form fills, email engagement) and the per-key aggregates scoring keeps of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.core.models import Event
from connector.state.db import Database, chunks
from connector.state.schema import event_aggregates_t, events_t

# (signature, stored data, new events) -> the updated data, or None: rebuild from every event (see Events.add)
AggregateFold = Callable[[str, Any, Sequence[Event]], "Mapping[str, Any] | None"]


def _event(row: sa.Row[Any]) -> Event:
    return Event(
        lead_key=row.lead_key,
        name=row.name,
        occurred_at=row.occurred_at,
        properties=dict(row.properties or {}),
        kind=row.kind,
        event_id=row.event_id,
    )


def _rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The events table rows of `events`, an event_id repeated in the batch kept once."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in events:
        if e.event_id is not None:
            if e.event_id in seen:
                continue
            seen.add(e.event_id)
        rows.append(
            {
                "event_id": e.event_id, "lead_key": e.lead_key, "name": e.name, "kind": e.kind,
                "occurred_at": e.occurred_at, "properties": dict(e.properties),
            }
        )
    return rows


class Events:
    """The events and event_aggregates tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, events: Sequence[Event], fold: AggregateFold | None = None) -> int:
        """Store events, skipping any whose event_id is already stored (or repeated in the batch); returns how many were new.

        Each key's aggregates (see `aggregates`) are kept current in the same transaction:
        `fold(signature, data, new_events)` gives the updated data, or None when they must be rebuilt
        (another scoring config); without `fold` the keys' aggregates are marked stale.
        """
        rows = _rows(events)
        with self._db.write() as conn:
            return self._add(conn, events, rows, fold)

    def add_in(self, conn: sa.Connection, events: Sequence[Event], fold: AggregateFold | None = None) -> int:
        """`add` inside the caller's transaction (events and the intake rows they cause commit together)."""
        return self._add(conn, events, _rows(events), fold)

    def _add(self, conn: sa.Connection, events: Sequence[Event], rows: list[dict[str, Any]], fold: AggregateFold | None) -> int:
        new_ids: set[str] = set()
        inserted = 0
        for chunk in chunks(rows):
            stmt = self._db.insert(events_t).on_conflict_do_nothing(index_elements=["event_id"]).returning(events_t.c.event_id)
            done = conn.execute(stmt, list(chunk)).all()
            inserted += len(done)
            new_ids.update(r.event_id for r in done if r.event_id is not None)
        by_key: dict[str, list[Event]] = {}
        for e in events:
            if e.event_id is None or e.event_id in new_ids:
                by_key.setdefault(e.lead_key, []).append(e)
                new_ids.discard(e.event_id or "")  # a repeated event_id is folded once
        if by_key:
            self._fold_aggregates(conn, by_key, fold)
        return inserted

    def _lock_aggregates(self, conn: sa.Connection, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """Lock the aggregate rows of `keys` (a stale placeholder first where there is none): key -> (signature, data).

        The placeholder insert waits for another transaction's uncommitted insert of the same key, so an
        event writer and a rebuilder of one key always run one after the other, never interleaved.
        """
        out: dict[str, tuple[str, Any]] = {}
        for chunk in chunks(sorted(keys)):  # one lock order for everyone: no deadlocks
            conn.execute(
                self._db.insert(event_aggregates_t).on_conflict_do_nothing(index_elements=["key"]),
                [{"key": k, "signature": "", "data": {}} for k in chunk],
            )
            query = sa.select(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)).order_by(event_aggregates_t.c.key)
            if self._db.dialect == "postgresql":
                query = query.with_for_update()
            out.update({r.key: (r.signature, r.data) for r in conn.execute(query)})
        return out

    def _fold_aggregates(self, conn: sa.Connection, by_key: Mapping[str, Sequence[Event]], fold: AggregateFold | None) -> None:
        locked = self._lock_aggregates(conn, list(by_key))
        for key, new_events in by_key.items():
            signature, data = locked[key]
            if not signature:
                continue  # stale or new: rebuilt from every event when next needed
            updated = fold(signature, data, new_events) if fold is not None else None
            values = {"signature": "", "data": {}} if updated is None else {"data": dict(updated)}
            conn.execute(sa.update(event_aggregates_t).where(event_aggregates_t.c.key == key).values(**values))

    def aggregates(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """Stored aggregates of the keys that have them: key -> (signature, data); signature "" = stale."""
        out: dict[str, tuple[str, Any]] = {}
        with self._db.read() as conn:
            for chunk in chunks(list(dict.fromkeys(keys))):
                query = sa.select(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk))
                out.update({r.key: (r.signature, r.data) for r in conn.execute(query)})
        return out

    def rebuild_aggregates(
        self, keys: Sequence[str], build: Callable[[Sequence[Event]], tuple[str, Mapping[str, Any]]],
    ) -> dict[str, tuple[str, Any]]:
        """Aggregates of `keys` rebuilt from their stored events by `build(events) -> (signature, data)`, and saved.

        Keys without events get no row (a later event marks them stale). Runs under the same row locks
        as `add`, so an event stored meanwhile is either seen here or folded in after.
        """
        out: dict[str, tuple[str, Any]] = {}
        with self._db.write() as conn:
            self._lock_aggregates(conn, keys)
            events: dict[str, list[Event]] = {k: [] for k in keys}
            for chunk in chunks(list(keys)):
                query = sa.select(events_t).where(events_t.c.lead_key.in_(chunk)).order_by(events_t.c.occurred_at, events_t.c.id)
                for row in conn.execute(query):
                    events[row.lead_key].append(_event(row))
            for key, evs in events.items():
                if not evs:
                    conn.execute(sa.delete(event_aggregates_t).where(event_aggregates_t.c.key == key))
                    continue
                signature, data = build(evs)
                out[key] = (signature, data)
                conn.execute(
                    sa.update(event_aggregates_t).where(event_aggregates_t.c.key == key).values(signature=signature, data=dict(data))
                )
        return out

    def for_leads(self, lead_keys: Sequence[str], since: datetime | None = None) -> dict[str, list[Event]]:
        """Every requested key → its events (oldest first; an empty list when none)."""
        keys = list(dict.fromkeys(lead_keys))
        out: dict[str, list[Event]] = {k: [] for k in keys}
        with self._db.read() as conn:
            for chunk in chunks(keys):
                query = sa.select(events_t).where(events_t.c.lead_key.in_(chunk))
                if since is not None:
                    query = query.where(events_t.c.occurred_at >= since)
                for row in conn.execute(query.order_by(events_t.c.occurred_at, events_t.c.id)):
                    out[row.lead_key].append(_event(row))
        return out

    def purge(self, before: datetime) -> int:
        """Delete events that occurred before `before` (beyond every decay horizon); returns how many.

        The aggregates of the keys that lost events are marked stale (rebuilt from what is left).
        """
        with self._db.write() as conn:
            keys = list(conn.scalars(sa.select(events_t.c.lead_key).where(events_t.c.occurred_at < before).distinct()))
            for chunk in chunks(keys):
                conn.execute(
                    sa.update(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)).values(signature="", data={})
                )
            return int(conn.execute(sa.delete(events_t).where(events_t.c.occurred_at < before)).rowcount)
