"""Shared quota rows: each account's sliding-window limiter and daily API budget (the algorithms are in ratelimit.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from connector.state.db import Database
from connector.state.schema import daily_budgets_t, rate_limits_t

T = TypeVar("T")


@dataclass(frozen=True)
class LimiterState:
    """One account's shared sliding window: (epoch microseconds, calls) pairs, and a 429 block."""

    recent_calls: tuple[tuple[int, int], ...] = ()
    blocked_until_us: int = 0


@dataclass(frozen=True)
class BudgetState:
    """One account's calls counted for one budget day, plus the CRM's own limit when it told us."""

    day: str
    used: int = 0
    observed_limit: int | None = None


class Quota:
    """The rate_limits and daily_budgets tables: each row read, changed and written under its row lock."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def update_limiter(self, account: str, fn: Callable[[LimiterState], tuple[LimiterState, T]]) -> T:
        """Read, change and write one account's limiter row under a row lock (every process sees one window).

        `fn` is pure and quick: it runs inside the lock and must not sleep.
        """
        with self._db.write() as conn:
            locked = sa.select(rate_limits_t).where(rate_limits_t.c.account == account).with_for_update()
            row = conn.execute(locked).first()
            if row is None:  # the account's first call: insert-then-lock, so two processes cannot both create it
                conn.execute(
                    self._db.insert(rate_limits_t).values(account=account, recent_calls=[], blocked_until_us=0).on_conflict_do_nothing()
                )
                row = conn.execute(locked).one()
            state = LimiterState(tuple((int(t), int(n)) for t, n in row.recent_calls), int(row.blocked_until_us))
            new, out = fn(state)
            if new == state:
                return out  # nothing to record (a peek, a correction that found nothing missing): no UPDATE
            conn.execute(
                sa.update(rate_limits_t)
                .where(rate_limits_t.c.account == account)
                .values(recent_calls=[[t, n] for t, n in new.recent_calls], blocked_until_us=new.blocked_until_us)
            )
            return out

    def update_budget(self, account: str, fn: Callable[[BudgetState], tuple[BudgetState, T]]) -> T:
        """Read, change and write one account's daily budget row under a row lock (day "" the first time).

        `fn` is pure and quick: it runs inside the lock.
        """
        with self._db.write() as conn:
            locked = sa.select(daily_budgets_t).where(daily_budgets_t.c.account == account).with_for_update()
            row = conn.execute(locked).first()
            if row is None:
                # Insert-then-lock, so two processes starting a fresh account cannot both count from zero.
                conn.execute(self._db.insert(daily_budgets_t).values(account=account, day="", used=0).on_conflict_do_nothing())
                row = conn.execute(locked).one()
            state = BudgetState(row.day, int(row.used), None if row.observed_limit is None else int(row.observed_limit))
            new, out = fn(state)
            if new == state:
                return out
            conn.execute(
                sa.update(daily_budgets_t)
                .where(daily_budgets_t.c.account == account)
                .values(day=new.day, used=new.used, observed_limit=new.observed_limit)
            )
            return out

    # service intake (accepted webhook / event work; the service answers 2xx only once it is here)

    def budget_states(self) -> dict[str, BudgetState]:
        """Every account's daily-budget row as last written (read-only: the day is not rolled here)."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(daily_budgets_t).order_by(daily_budgets_t.c.account))
            return {
                r.account: BudgetState(r.day, int(r.used), None if r.observed_limit is None else int(r.observed_limit))
                for r in rows
            }
