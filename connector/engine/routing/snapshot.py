"""The batch's view of the reps at `now`: who can take leads (inactive, absent, off hours), pool members and plans, memoized."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from connector.core.keys import OPEN_SCOPE
from connector.core.models import Account, Candidate, Rep
from connector.engine.routing.availability import Schedule, Unavailability, load_zone
from connector.engine.routing.compile import CompiledPool, CompiledRouting, CompiledRule, day_scope, next_day_start
from connector.engine.routing.config import MAX_WEIGHT, TURN, normalize_email
from connector.engine.routing.plan import Plan
from connector.engine.routing.reps import rep_skills
from connector.engine.routing.state import CounterOp


class Member(NamedTuple):
    """A pool member as a batch sees it: what does not change within the batch."""

    email: str
    rep: Rep | None
    why: str | None  # why not eligible (None: eligible)
    candidate: Candidate
    stride: int  # round-robin stride: TURN / weight


class AvailabilitySnapshot:
    """Reps by email and owner id, and why each one cannot take leads at `now` (inactive, absent, off hours).

    Build it once per batch with `availability_snapshot` and pass it in `RoutingContext.availability`;
    without one, `route_lead` works out only the reps it looks at, lead by lead. Capacity is not
    part of it: that depends on the evolving routing state.
    """

    __slots__ = ("now", "reps", "day", "compiled", "_by_email", "_by_owner", "_blocked", "_skills", "_cands", "_members", "_plans", "_load_ops",
                 "_by_schedule", "_rep_values", "cap_table", "_free")

    def __init__(self, reps: Sequence[Rep], compiled: CompiledRouting, now: datetime, *, eager: bool = True) -> None:
        self.now = now
        self.reps = reps
        self.compiled = compiled
        self._rep_values = tuple(reps)
        last = compiled.batch_memo.get("snapshot") if eager else None
        if isinstance(last, AvailabilitySnapshot) and last._rep_values == self._rep_values and last.now == now:
            # The same reps at the same instant (a replay, or batches routed at one `now`): the same snapshot.
            self._share(last, verdicts=True)
            compiled.batch_memo["snapshot"] = self
            return
        self._by_email = {normalize_email(r.email): r for r in reps}
        self._by_owner: dict[tuple[str, str], Rep] | None = None
        self._blocked: dict[str, str | None] = {}
        self._skills: dict[str, Mapping[str, frozenset[str]]] = {}
        self._cands: dict[tuple[str, bool, str], Candidate] = {}
        self._members: dict[tuple[str, str], tuple[object, tuple[Member, ...]]] = {}
        self._plans: dict[tuple[str, str, str | None], tuple[object, Plan]] = {}
        self._load_ops: dict[str, tuple[CounterOp, CounterOp]] = {}
        self._by_schedule: dict[int, str | None] = {}  # reps sharing a schedule share its verdict at `now`
        self._free: dict[tuple[str, bool], tuple[Unavailability | None, datetime | None]] = {}  # see free_at
        self.day = day_scope(compiled, now)
        self.cap_table: dict[str, tuple[int | None, int | None]] | None = None
        if eager:
            for email in self._by_email:
                self.blocked_reason(email)
            if (
                isinstance(last, AvailabilitySnapshot) and last.day == self.day and last._blocked == self._blocked
                and last._rep_values == self._rep_values
            ):
                # Same reps, same verdicts, same day: the pool tables and plans come out the same.
                self._share(last, verdicts=False)
            compiled.batch_memo["snapshot"] = self

    def _share(self, last: AvailabilitySnapshot, *, verdicts: bool) -> None:
        """Take `last`'s tables (all of them with `verdicts`: same reps and same instant)."""
        if verdicts:
            self._by_email, self._blocked, self._by_schedule, self.day = last._by_email, last._blocked, last._by_schedule, last.day
            self._free = last._free
        self._by_owner, self._skills, self._cands = last._by_owner, last._skills, last._cands
        self._members, self._plans, self._load_ops = last._members, last._plans, last._load_ops
        self.cap_table = last.cap_table

    def rep(self, email: str) -> Rep | None:
        return self._by_email.get(email)

    def rep_for_owner(self, crm: str, owner_id: str) -> Rep | None:
        if self._by_owner is None:
            self._by_owner = {(c, oid): r for r in self.reps for c, oid in r.owner_ids.items()}
        return self._by_owner.get((crm, owner_id))

    def blocked_reason(self, email: str) -> str | None:
        """Inactive, out of office, holiday or outside working hours; None when the rep can work now."""
        if email in self._blocked:
            return self._blocked[email]
        rep = self._by_email.get(email)
        reason: str | None
        if rep is None:
            reason = "not resolved to a CRM owner"
        elif not rep.is_active:
            reason = "inactive"
        else:
            schedule = self.compiled.schedules.get(email)
            if schedule is None:
                reason = Schedule(timezone=load_zone(rep.timezone)).unavailable_reason(self.now)
            else:
                key = id(schedule)  # schedules live as long as the compiled config
                if key in self._by_schedule:
                    reason = self._by_schedule[key]
                else:
                    reason = self._by_schedule[key] = schedule.unavailable_reason(self.now)
        self._blocked[email] = reason
        return reason

    def schedule(self, email: str, rep: Rep) -> Schedule:
        """The rep's schedule (a rep missing from the config works at any hour in its zone)."""
        return self.compiled.schedules.get(email) or Schedule(timezone=load_zone(rep.timezone))

    def free_at(self, email: str, rep: Rep, *, next_day: bool = False) -> tuple[Unavailability | None, datetime | None]:
        """What keeps the rep away at `now` by their schedule (None: nothing), and the first instant they are free.

        With `next_day`, the first instant from the start of the next routing day (a leads-per-day cap
        frees then). None as the instant: not within the schedule's horizon. Worked out once per rep.
        """
        key = (email, next_day)
        found = self._free.get(key)
        if found is None:
            schedule = self.schedule(email, rep)
            start = next_day_start(self.compiled, self.now) if next_day else self.now
            found = self._free[key] = (schedule.unavailable_cause(self.now), schedule.next_available(start))
        return found

    def members(self, pool: CompiledPool, crm: str, known: Collection[str] | None) -> tuple[Member, ...]:
        """(email, rep, why not, candidate, stride) per pool member: what does not change within the batch."""
        cached = self._members.get((pool.name, crm))
        if cached is not None and cached[0] is known:
            return cached[1]
        rows: list[Member] = []
        for email in pool.members:
            rep = self._by_email.get(email)
            why = self.blocked_reason(email)
            if why is None and rep is not None:
                owner_id = rep.owner_ids.get(crm)
                if owner_id is None:
                    why = f"no owner id in {crm}"
                elif known is not None and owner_id not in known:
                    why = f"owner {owner_id} is not an active owner in {crm}"
            weight = rep.weight if rep is not None and 1 <= rep.weight <= MAX_WEIGHT else 1
            rows.append(Member(email, rep, why, self.candidate(email, why is None, why or "eligible"), TURN // weight))
        table = tuple(rows)
        self._members[(pool.name, crm)] = (known, table)
        return table

    def plan(self, pool: CompiledPool, rule: CompiledRule | None, crm: str, known: Collection[str] | None) -> Plan:
        """The pool's rows and verdicts for leads of `crm` under `rule` (its tier), built once per batch."""
        tiered = rule if rule is not None and rule.tier is not None else None
        key = (pool.name, crm, tiered.name if tiered is not None else None)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is known:
            return cached[1]
        plan = Plan(self, self.members(pool, crm, known), tiered)
        self._plans[key] = (known, plan)
        return plan

    def caps(self) -> Mapping[str, tuple[int | None, int | None]]:
        """rep email -> (max open leads, max leads per day), for the reps with a cap."""
        if self.cap_table is None:
            self.cap_table = {
                normalize_email(r.email): (r.max_open_leads, r.max_leads_per_day)
                for r in self.reps if r.max_open_leads is not None or r.max_leads_per_day is not None
            }
        return self.cap_table

    def load_ops(self, email: str) -> tuple[CounterOp, CounterOp]:
        """One more open lead and one more lead today for a rep: the same two ops for every lead of the batch."""
        ops = self._load_ops.get(email)
        if ops is None:
            ops = self._load_ops[email] = (CounterOp(OPEN_SCOPE, email, "add", 1), CounterOp(self.day, email, "add", 1))
        return ops

    def skills(self, email: str, rep: Rep) -> Mapping[str, frozenset[str]]:
        cached = self._skills.get(email)
        if cached is None:
            cached = self._skills[email] = rep_skills(rep)
        return cached

    def candidate(self, email: str, eligible: bool, reason: str) -> Candidate:
        """Candidates repeat across a batch; share the values."""
        key = (email, eligible, reason)
        cand = self._cands.get(key)
        if cand is None:
            cand = self._cands[key] = Candidate(email, eligible, reason)
        return cand


def availability_snapshot(reps: Sequence[Rep], compiled: CompiledRouting, now: datetime) -> AvailabilitySnapshot:
    """Every rep's availability at `now`, computed once and reused for a batch routed at that instant."""
    return AvailabilitySnapshot(reps, compiled, now, eager=True)


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What the pipeline looked up for one lead: reps, the matched account, a duplicate contact's owner."""

    reps: Sequence[Rep] = ()
    account: Account | None = None
    contact_owner_id: str | None = None
    is_free_mail: bool = False
    conversion_rates: Mapping[str, float] | None = None  # rep email -> past conversion rate (pools with weight_by_conversion)
    known_owner_ids: Collection[str] | None = None  # active owner ids of the lead's CRM; None = not known
    queue_owner_ids: Collection[str] = ()  # owner ids of the lead's CRM that are queues, not people
    kept_queue_ids: Collection[str] = ()  # of those, the queues [routing] keep_queue_owners keeps
    is_competitor: bool = False
    availability: AvailabilitySnapshot | None = None


def snapshot_for(ctx: RoutingContext, compiled: CompiledRouting, now: datetime) -> AvailabilitySnapshot:
    """The context's snapshot when it was taken of these reps and config at `now`; otherwise one built lazily."""
    snap = ctx.availability
    if snap is not None and snap.now == now and snap.reps is ctx.reps and snap.compiled is compiled:
        return snap
    return AvailabilitySnapshot(ctx.reps, compiled, now, eager=False)
