"""Counting what the state store sends its database: statements, transactions and pooled-connection checkouts.

For benchmarks and tests of coordination cost (issue 18): how many round trips a page, a lead or a replica's
start costs. Counting is off until a `RoundTrips` is attached, and costs one Python call per event while on.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa


class RoundTrips:
    """Counts on one engine while attached: SQL statements (an executemany counts once), transactions, checkouts.

    `round_trips` adds what the statements do not show: each transaction's BEGIN and COMMIT (or ROLLBACK) and, on
    PostgreSQL, the liveness ping of a pooled connection that sat idle (state/db.py `_ping_when_idle`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self.statements = 0
        self.transactions = 0
        self.checkouts = 0
        self.pings = 0
        self.by_kind: Counter[str] = Counter()  # first words of each statement, e.g. "SELECT rate_limits"
        self._attached = False

    @property
    def round_trips(self) -> int:
        return self.statements + 2 * self.transactions + self.pings

    def as_dict(self) -> dict[str, int]:
        return {"statements": self.statements, "transactions": self.transactions, "checkouts": self.checkouts,
                "pings": self.pings, "round_trips": self.round_trips}

    def attach(self) -> RoundTrips:
        if not self._attached:
            sa.event.listen(self._engine, "before_cursor_execute", self._statement)
            sa.event.listen(self._engine, "begin", self._begin)
            sa.event.listen(self._engine.pool, "checkout", self._checkout)
            self._attached = True
        return self

    def detach(self) -> None:
        if self._attached:
            sa.event.remove(self._engine, "before_cursor_execute", self._statement)
            sa.event.remove(self._engine, "begin", self._begin)
            sa.event.remove(self._engine.pool, "checkout", self._checkout)
            self._attached = False

    def __enter__(self) -> RoundTrips:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _statement(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("BEGIN"):
            return  # SQLite's BEGIN IMMEDIATE / DEFERRED is sent as a statement: it is the transaction's, counted there
        with self._lock:
            self.statements += 1
            self.by_kind[statement_kind(statement)] += 1

    def _begin(self, conn: Any) -> None:
        with self._lock:
            self.transactions += 1

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        with self._lock:
            self.checkouts += 1
            self.pings += bool(record.info.get("pinged"))


def statement_kind(statement: str) -> str:
    """What a statement does and to which table: "INSERT outbox", "SELECT rate_limits", "SELECT clock_timestamp()"."""
    words = statement.split()
    upper = [w.upper() for w in words]
    verb = upper[0] if upper else ""
    marker = {"UPDATE": "UPDATE", "INSERT": "INTO"}.get(verb, "FROM")
    if marker in upper and upper.index(marker) + 1 < len(words):
        return f"{verb} {words[upper.index(marker) + 1].strip(chr(34))}"
    return " ".join(words[:2])
