"""Dead letters: records the connector gave up on, with where and why, until someone resolves them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from connector.state.db import Database, chunks
from connector.state.schema import dead_letters_t

DeadLetterStatus = Literal["open", "retrying", "discarded", "resolved"]
DEAD_LETTER_STATUSES: tuple[str, ...] = ("open", "retrying", "discarded", "resolved")


@dataclass(frozen=True)
class DeadLetter:
    """A record the connector gave up on, with where and why."""

    id: int
    crm: str
    object_type: str
    record_id: str
    field: str | None
    code: str | None
    message: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    status: str
    payload: Mapping[str, Any]


def _dead_letter(row: sa.Row[Any]) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        crm=row.crm,
        object_type=row.object_type,
        record_id=row.record_id,
        field=row.field,
        code=row.code,
        message=row.message,
        attempts=row.attempts,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        status=row.status,
        payload=dict(row.payload or {}),
    )


class DeadLetters:
    """The dead_letters table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_one(
        self, conn: sa.Connection, *, crm: str, object_type: str, record_id: str, field: str | None, code: str | None,
        message: str, payload: Mapping[str, Any], now: datetime,
    ) -> int:
        """`add` inside the caller's transaction."""
        # The same record failing with the same code is one problem seen again, not a new one.
        existing = conn.execute(
            sa.select(dead_letters_t.c.id, dead_letters_t.c.attempts)
            .where(
                dead_letters_t.c.crm == crm,
                dead_letters_t.c.object_type == object_type,
                dead_letters_t.c.record_id == record_id,
                dead_letters_t.c.code.is_(None) if code is None else dead_letters_t.c.code == code,
                dead_letters_t.c.status.in_(("open", "retrying")),
            )
            .order_by(dead_letters_t.c.id)
            .limit(1)
        ).first()
        if existing is not None:
            conn.execute(
                sa.update(dead_letters_t)
                .where(dead_letters_t.c.id == existing.id)
                .values(
                    attempts=existing.attempts + 1,
                    last_seen=now,
                    message=message,
                    field=field,
                    payload=dict(payload),
                    status="open",
                    status_changed_at=now,
                )
            )
            return int(existing.id)
        stmt = (
            sa.insert(dead_letters_t)
            .values(
                crm=crm,
                object_type=object_type,
                record_id=record_id,
                field=field,
                code=code,
                message=message,
                attempts=1,
                first_seen=now,
                last_seen=now,
                status="open",
                status_changed_at=now,
                payload=dict(payload),
            )
            .returning(dead_letters_t.c.id)
        )
        return int(conn.execute(stmt).scalar_one())

    def add_many(self, conn: sa.Connection, letters: Sequence[Mapping[str, Any]], now: datetime) -> None:
        """`add_one` for many letters (in order) with one read, one bulk update and one bulk insert per chunk."""
        for chunk in chunks(list(letters)):
            open_rows: dict[tuple[Any, ...], tuple[int, int]] = {}
            record_ids = sorted({letter["record_id"] for letter in chunk})
            existing = conn.execute(
                sa.select(dead_letters_t.c.id, dead_letters_t.c.crm, dead_letters_t.c.object_type, dead_letters_t.c.record_id,
                          dead_letters_t.c.code, dead_letters_t.c.attempts)
                .where(dead_letters_t.c.record_id.in_(record_ids), dead_letters_t.c.status.in_(("open", "retrying")))
                .order_by(dead_letters_t.c.id)
            )
            for row in existing:
                # The oldest open row of a record + code is the one `add_one` counts up.
                open_rows.setdefault((row.crm, row.object_type, row.record_id, row.code), (int(row.id), int(row.attempts)))
            updates: dict[int, dict[str, Any]] = {}
            inserts: dict[tuple[Any, ...], dict[str, Any]] = {}
            for letter in chunk:
                key = (letter["crm"], letter["object_type"], letter["record_id"], letter["code"])
                latest = {"field": letter["field"], "message": letter["message"], "payload": dict(letter["payload"])}
                if key in open_rows:
                    row_id, seen = open_rows[key]
                    before = updates.get(row_id)
                    updates[row_id] = {"b_id": row_id, "b_attempts": (before["b_attempts"] if before else seen) + 1, **latest}
                elif key in inserts:
                    inserts[key].update(latest, attempts=inserts[key]["attempts"] + 1)
                else:
                    inserts[key] = {
                        "crm": letter["crm"], "object_type": letter["object_type"], "record_id": letter["record_id"],
                        "code": letter["code"], "attempts": 1, "first_seen": now, "last_seen": now, "status": "open",
                        "status_changed_at": now, **latest,
                    }
            if updates:
                conn.execute(
                    sa.update(dead_letters_t)
                    .where(dead_letters_t.c.id == sa.bindparam("b_id"))
                    .values(attempts=sa.bindparam("b_attempts"), last_seen=now, status="open", status_changed_at=now),
                    list(updates.values()),
                )
            if inserts:
                conn.execute(sa.insert(dead_letters_t), list(inserts.values()))

    def add(
        self, *, crm: str, object_type: str, record_id: str, field: str | None, code: str | None, message: str,
        payload: Mapping[str, Any], now: datetime,
    ) -> int:
        """File a record the connector gives up on; the same record + code again counts up that row. Returns its id."""
        with self._db.write() as conn:
            return self.add_one(
                conn, crm=crm, object_type=object_type, record_id=record_id, field=field, code=code, message=message,
                payload=payload, now=now,
            )

    def find(self, status: str | None = "open", limit: int = 100) -> list[DeadLetter]:
        """Dead letters with this status (None: all), oldest first."""
        query = sa.select(dead_letters_t).order_by(dead_letters_t.c.id).limit(limit)
        if status is not None:
            query = query.where(dead_letters_t.c.status == status)
        with self._db.read() as conn:
            return [_dead_letter(r) for r in conn.execute(query)]

    def get(self, id: int) -> DeadLetter | None:
        """One dead letter by id."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(dead_letters_t).where(dead_letters_t.c.id == id)).first()
            return _dead_letter(row) if row is not None else None

    def set_status(self, id: int, status: str, now: datetime) -> None:
        """Move a dead letter to open / retrying / discarded / resolved; unknown ids raise KeyError."""
        if status not in DEAD_LETTER_STATUSES:
            raise ValueError(f"dead letter status must be one of {', '.join(DEAD_LETTER_STATUSES)}, got {status!r}")
        with self._db.write() as conn:
            result = conn.execute(
                sa.update(dead_letters_t).where(dead_letters_t.c.id == id).values(status=status, status_changed_at=now)
            )
            if result.rowcount == 0:
                raise KeyError(f"no dead letter with id {id}")

    def count(self, status: str | None = "open") -> int:
        """Dead letters with this status (None: all)."""
        query = sa.select(sa.func.count()).select_from(dead_letters_t)
        if status is not None:
            query = query.where(dead_letters_t.c.status == status)
        with self._db.read() as conn:
            return int(conn.scalar(query) or 0)
