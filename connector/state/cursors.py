"""Cursors: how far each CRM object stream has been read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from connector.state.db import Database
from connector.state.schema import cursors_t


@dataclass(frozen=True)
class CursorRow:
    crm: str
    object_type: str
    stream: str
    value: str
    updated_at: datetime


class Cursors:
    """The cursors table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, crm: str, object_type: str, stream: str) -> str | None:
        """The stored cursor of one stream, or None before its first sync."""
        with self._db.read() as conn:
            return cast(
                "str | None",
                conn.scalar(
                    sa.select(cursors_t.c.value).where(
                        cursors_t.c.crm == crm, cursors_t.c.object_type == object_type, cursors_t.c.stream == stream
                    )
                ),
            )

    def save(self, crm: str, object_type: str, stream: str, value: str, now: datetime) -> None:
        """Store a stream's cursor (insert or replace)."""
        stmt = self._db.insert(cursors_t).values(crm=crm, object_type=object_type, stream=stream, value=value, updated_at=now)
        with self._db.write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["crm", "object_type", "stream"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )

    def all(self) -> list[CursorRow]:
        """Every stored cursor, by CRM, object and stream."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(cursors_t).order_by(cursors_t.c.crm, cursors_t.c.object_type, cursors_t.c.stream))
            return [CursorRow(r.crm, r.object_type, r.stream, r.value, r.updated_at) for r in rows]
