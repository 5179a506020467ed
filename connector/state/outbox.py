"""The outbox: CRM writes committed with the decisions that caused them, claimed and sent by workers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connector.core.keys import lead_key
from connector.core.models import FieldDecision, Patch, WriteResult
from connector.state.db import Database, chunks, split_lead_key
from connector.state.dead_letters import DeadLetters
from connector.state.leads import LeadStates
from connector.state.schema import outbox_t


@dataclass(frozen=True)
class OutboxItem:
    """A pending write, committed together with the decision that caused it."""

    id: int
    patch: Patch
    created_at: datetime
    attempts: int
    # True when another claim came first (a worker that died mid-write, or a failed attempt): the CRM
    # may already hold the write, or a person may have changed the record since the decision.
    reclaimed: bool = False


def patch_to_json(patch: Patch) -> dict[str, Any]:
    """A Patch as plain JSON data (FieldDecision by value); `patch_from_json` reverses it exactly."""
    return {
        "crm": patch.crm,
        "object_type": patch.object_type,
        "record_id": patch.record_id,
        "changes": dict(patch.changes),
        "current": dict(patch.current),
        "reasons": dict(patch.reasons),
        "decisions": {k: FieldDecision(v).value for k, v in patch.decisions.items()},
    }


def patch_from_json(data: Mapping[str, Any]) -> Patch:
    """Rebuild a Patch from `patch_to_json` output (an outbox row or a dead letter's payload)."""
    return Patch(
        crm=data["crm"],
        object_type=data["object_type"],
        record_id=data["record_id"],
        changes=dict(data.get("changes", {})),
        current=dict(data.get("current", {})),
        reasons=dict(data.get("reasons", {})),
        decisions={k: FieldDecision(v) for k, v in data.get("decisions", {}).items()},
    )


def outbox_values(patch: Patch, now: datetime) -> dict[str, Any]:
    """A queued write as the column values of its pending outbox row (without id)."""
    return {
        "crm": patch.crm,
        "object_type": patch.object_type,
        "record_id": patch.record_id,
        "patch": patch_to_json(patch),
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _claim_by_id() -> sa.Update:
    return sa.update(outbox_t).where(outbox_t.c.id == sa.bindparam("b_id")).values(
        claimed_by=sa.bindparam("claimed_by"), claimed_until=sa.bindparam("claimed_until")
    )


def _done_by_id() -> sa.Update:
    return sa.update(outbox_t).where(outbox_t.c.id == sa.bindparam("b_id")).values(
        status=sa.literal_column("'done'"), updated_at=sa.bindparam("b_updated_at")
    )


class Outbox:
    """The outbox table; finishing a write also updates the lead's state and files dead letters."""

    def __init__(self, db: Database, leads: LeadStates, dead_letters: DeadLetters) -> None:
        self._db = db
        self._leads = leads
        self._dead_letters = dead_letters

    def save(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert outbox rows (`outbox_values` plus their id) in the caller's transaction."""
        self._db.execute_many(conn, "outbox.save", lambda: sa.insert(outbox_t), rows)

    def pending_writes(self, conn: sa.Connection, lead_keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per lead key: the field values of its writes still in the outbox (oldest first, later ones win)."""
        by_target: dict[tuple[str, str], list[str]] = {}
        for key in dict.fromkeys(lead_keys):
            crm, object_type, record_id = split_lead_key(key)
            by_target.setdefault((crm, object_type), []).append(record_id)
        out: dict[str, dict[str, Any]] = {}
        for (crm, object_type), ids in by_target.items():
            for chunk in chunks(ids):
                rows = conn.execute(
                    sa.select(outbox_t.c.record_id, outbox_t.c.patch)
                    .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending", outbox_t.c.object_type == object_type,
                           outbox_t.c.record_id.in_(chunk))
                    # ix_outbox_record's order: each record's writes oldest first, read from the index without a
                    # sort, where ordering by id alone made SQLite walk every pending row of the CRM instead.
                    .order_by(outbox_t.c.record_id, outbox_t.c.id)
                )
                for row in rows:
                    out.setdefault(lead_key(crm, object_type, row.record_id), {}).update(dict(row.patch.get("changes", {})))
        return out

    def enqueue(self, patches: Sequence[Patch], now: datetime) -> list[int]:
        """Queue writes that no routing decision goes with (score-only patches); ids in order."""
        with self._db.write() as conn:
            return [
                int(conn.execute(sa.insert(outbox_t).values(**outbox_values(p, now)).returning(outbox_t.c.id)).scalar_one())
                for p in patches
            ]

    def pending(self, crm: str, limit: int = 1000) -> list[OutboxItem]:
        """Writes still to do for one CRM, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts)
                .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending")
                .order_by(outbox_t.c.id)
                .limit(limit)
            )
            return [OutboxItem(r.id, patch_from_json(r.patch), r.created_at, r.attempts) for r in rows]

    def claim(self, crm: str, worker: str, now: datetime, *, limit: int = 1000, lease_seconds: float = 300) -> list[OutboxItem]:
        """Take up to `limit` pending writes for this worker (oldest first) that no other worker holds a live lease on.

        For several replicas: each sends only what it claimed. On PostgreSQL the claim skips rows
        another replica is claiming right now (FOR UPDATE SKIP LOCKED) instead of waiting; a lease
        that runs out (a replica killed mid-write) makes the rows claimable again.
        Only each record's oldest pending write is claimable: a newer one waits until the older one is
        finished, so one record's writes leave in the order they were decided and an older value never
        lands after a newer one [architecture: A person's choice wins].
        """
        available = sa.or_(outbox_t.c.claimed_until.is_(None), outbox_t.c.claimed_until <= now)
        # "No older pending write of the same record", one lookup in ix_outbox_record per candidate row: the scan
        # in id order stops after `limit` rows instead of grouping every pending row of the CRM on each claim.
        older = outbox_t.alias("older")
        older_pending = sa.exists().where(
            older.c.crm == outbox_t.c.crm, older.c.object_type == outbox_t.c.object_type,
            older.c.record_id == outbox_t.c.record_id, older.c.status == "pending", older.c.id < outbox_t.c.id,
        )
        query = (
            sa.select(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts, outbox_t.c.claimed_by)
            .where(outbox_t.c.crm == crm, outbox_t.c.status == "pending", available, ~older_pending)
            .order_by(outbox_t.c.id)
            .limit(limit)
        )
        claim = {"claimed_by": worker, "claimed_until": now + timedelta(seconds=lease_seconds)}
        with self._db.write() as conn:
            if self._db.dialect == "postgresql":
                # One statement: the CTE picks and locks the rows, the UPDATE claims them and returns
                # each row with the holder it had before (RETURNING gives the new values only).
                picked = query.with_only_columns(outbox_t.c.id, outbox_t.c.claimed_by).with_for_update(skip_locked=True).cte("picked")
                stmt = (
                    sa.update(outbox_t)
                    .where(outbox_t.c.id == picked.c.id)
                    .values(**claim)
                    .returning(outbox_t.c.id, outbox_t.c.patch, outbox_t.c.created_at, outbox_t.c.attempts, picked.c.claimed_by)
                )
                rows: Sequence[Any] = sorted(conn.execute(stmt).all(), key=lambda r: int(r.id))
            else:
                # BEGIN IMMEDIATE holds the write lock, so the rows just read are still unclaimed; the UPDATE names
                # them by id rather than running the oldest-per-record query again.
                rows = conn.execute(query).all()
                self._db.execute_many(conn, "outbox.claim", _claim_by_id, [{"b_id": r.id, **claim} for r in rows])
            return [
                OutboxItem(r.id, patch_from_json(r.patch), r.created_at, r.attempts, reclaimed=r.claimed_by is not None) for r in rows
            ]

    def hold(self, ids: Sequence[int], worker: str, now: datetime, *, lease_seconds: float) -> set[int]:
        """Renew this worker's claim on pending rows until now + lease_seconds; returns the ids it still holds.

        The fence before a write leaves: a row another replica claimed since (this worker's lease ran
        out while it waited for the rate limiter) or finished is not this worker's to send any more.
        """
        held: set[int] = set()
        if not ids:
            return held
        until = now + timedelta(seconds=lease_seconds)
        with self._db.write() as conn:
            for chunk in chunks(list(ids)):
                mine = (outbox_t.c.id.in_(chunk), outbox_t.c.claimed_by == worker, outbox_t.c.status == "pending")
                stmt = sa.update(outbox_t).where(*mine).values(claimed_until=until).returning(outbox_t.c.id)
                held.update(int(r.id) for r in conn.execute(stmt))
        return held

    def complete(
        self, done: Sequence[tuple[int, Patch, WriteResult]], now: datetime, *, max_attempts: int = 5
    ) -> None:
        """Record write outcomes: ok → done and LeadState.written merged; a record error → dead letter;
        retryable → stays pending, until max_attempts (config sync.max_dead_letter_attempts) dead-letters it.
        """
        failing = list(dict.fromkeys(outbox_id for outbox_id, _, result in done if not result.ok))
        with self._db.write() as conn:
            attempts: dict[int, int] = {}
            for chunk in chunks(failing):
                attempts.update(
                    (int(i), int(n)) for i, n in conn.execute(sa.select(outbox_t.c.id, outbox_t.c.attempts).where(outbox_t.c.id.in_(chunk)))
                )
            finished: list[int] = []
            written: list[tuple[str, Mapping[str, Any], datetime]] = []
            retry: dict[int, int] = {}
            failed: dict[int, int] = {}
            letters: list[dict[str, Any]] = []
            for outbox_id, patch, result in done:
                if result.ok:
                    finished.append(outbox_id)
                    written.append((lead_key(patch.crm, patch.object_type, patch.record_id), patch.changes, now))
                    continue
                attempts[outbox_id] = attempts.get(outbox_id, 0) + 1
                tries = attempts[outbox_id]
                if result.retryable and tries < max_attempts:
                    retry[outbox_id] = tries
                    continue
                retry.pop(outbox_id, None)
                failed[outbox_id] = tries
                message = result.message or "the CRM rejected the write without a message"
                if result.retryable:
                    message = f"gave up after {tries} attempts: {message}"
                letters.append({
                    "crm": patch.crm, "object_type": patch.object_type, "record_id": patch.record_id, "field": result.field,
                    "code": result.error_code, "message": message, "payload": patch_to_json(patch),
                })
            self._db.execute_many(conn, "outbox.done", _done_by_id, [{"b_id": i, "b_updated_at": now} for i in finished])
            by_id = outbox_t.c.id == sa.bindparam("b_id")
            if retry:
                # Release the lease so the next claim (by any replica) retries it.
                conn.execute(
                    sa.update(outbox_t).where(by_id).values(attempts=sa.bindparam("b_attempts"), updated_at=now, claimed_until=None),
                    [{"b_id": i, "b_attempts": n} for i, n in retry.items()],
                )
            if failed:
                conn.execute(
                    sa.update(outbox_t).where(by_id).values(status="failed", attempts=sa.bindparam("b_attempts"), updated_at=now),
                    [{"b_id": i, "b_attempts": n} for i, n in failed.items()],
                )
            self._leads.save(conn, {}, written)
            self._dead_letters.add_many(conn, letters, now)

    def purge(self, before: datetime) -> int:
        """Delete finished (done) outbox rows last touched before `before`; failed rows stay with their dead letters."""
        with self._db.write() as conn:
            result = conn.execute(sa.delete(outbox_t).where(outbox_t.c.status == "done", outbox_t.c.updated_at < before))
            return int(result.rowcount)

    def count_claimable(self, crm: str, now: datetime) -> int:
        """Pending writes of one CRM that no worker holds a live claim on (a helper sizes its claim to whole batches)."""
        available = sa.or_(outbox_t.c.claimed_until.is_(None), outbox_t.c.claimed_until <= now)
        with self._db.read() as conn:
            query = sa.select(sa.func.count()).where(outbox_t.c.crm == crm, outbox_t.c.status == "pending", available)
            return int(conn.execute(query).scalar_one())

    def count_pending(self) -> dict[str, int]:
        """Writes still to do, per CRM."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(outbox_t.c.crm, sa.func.count()).where(outbox_t.c.status == "pending").group_by(outbox_t.c.crm)
            )
            return {crm: int(n) for crm, n in rows}
