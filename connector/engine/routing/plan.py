"""A pool as one rule sees it for a batch (a plan), and its entries: the eligible rows and every member's verdict.

An entry is the answer for one set of blocked rows: reps at capacity, reps who had the lead already
(SLA reassignment), reps lacking a required skill; the tier filter then looks again. Entries are
memoized on the plan (capacity, by the capped reps' counts) and on each other (skills, conversion
strides), so a batch recomputes verdicts only when a count crosses a cap.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import compress, repeat
from operator import ge
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.core.keys import OPEN_SCOPE
from connector.core.models import Candidate, Lead
from connector.engine.routing.compile import MEMO_LIMIT, CompiledPool, CompiledRouting, CompiledRule, Place
from connector.engine.routing.config import TURN
from connector.engine.routing.reps import day_cap_reason, lacking_skill, lead_skills, open_cap_reason
from connector.engine.routing.state import CounterOp, LiveCounters

if TYPE_CHECKING:
    from connector.engine.routing.snapshot import AvailabilitySnapshot, Member

# Bounds of the conversion-rate factor a rep's weight is scaled by (rate / pool mean): one lucky week
# cannot starve or flood a rep.
CONVERSION_FACTOR_BOUNDS = (0.5, 2.0)


class Rotation(NamedTuple):
    """Reps in a round-robin race: their emails and strides, and (email, stride, position) in tie order (see strategies.earliest)."""

    emails: tuple[str, ...]
    strides: tuple[int, ...]
    ranked: tuple[tuple[str, int, int], ...]  # by stride, largest first, then position


def rotation(emails: Sequence[str], strides: Sequence[int]) -> Rotation:
    order = sorted(range(len(strides)), key=lambda j: (-strides[j], j))
    return Rotation(tuple(emails), tuple(strides), tuple((emails[j], strides[j], j) for j in order))


class Group(NamedTuple):
    """The reps best_match ties on for one lead's skill needs: minus their matched count, their positions, their race."""

    low: int
    positions: tuple[int, ...]
    race: Rotation


class Chosen(NamedTuple):
    """What stays the same whenever one member is chosen: the verdicts with it chosen, its load ops, its rotation reason."""

    candidates: tuple[Candidate, ...]
    load_ops: tuple[CounterOp, CounterOp]
    rotation_reason: str


class Entry(NamedTuple):
    """A plan's eligible rows and every member's verdict for one set of blocked rows, with the memos that hang off it."""

    rows: tuple[int, ...]  # plan rows still eligible, in member order
    emails: tuple[str, ...]
    strides: tuple[int, ...]
    weights: tuple[int, ...]
    candidates: tuple[Candidate, ...]  # every member's verdict
    tier_reasons: tuple[str, ...]
    race: Rotation
    blocked: Mapping[int, str]  # row -> why it is blocked (capacity, had the lead, lacks a skill)
    chosen: dict[int, Chosen]  # member position -> what choosing it gives
    groups: dict[tuple[Any, ...], Group]  # best_match's tie groups per skill needs
    by_skills: dict[tuple[Any, ...], Entry]  # (required skills, needs) -> this entry with those reps blocked too
    by_strides: dict[tuple[int, ...], Entry]  # conversion-weighted strides -> this entry with them


class Plan:
    """A pool as one rule sees it for a whole batch: its eligible reps (rows) and their verdicts before capacity.

    Built once per snapshot; `strategies.pick_rep` then picks a rep for each lead without a Python
    loop over every member. Rows are the members eligible before capacity and tier, in member order.
    """

    __slots__ = ("base", "tier", "tier_strict", "rule_name", "emails", "positions", "reps", "strides", "weights", "in_tier",
                 "open_cap_rows", "open_cap_emails", "open_caps", "day_cap_rows", "day_cap_emails", "day_caps", "all_caps",
                 "cap_emails", "capacity", "set_ops", "skill_rows", "variants", "unmatched", "base_entry")

    def __init__(self, snap: AvailabilitySnapshot, members: Sequence[Member], rule: CompiledRule | None) -> None:
        self.base = tuple(m.candidate for m in members)  # every member's verdict before capacity and tier
        eligible = [(index, m.email, m.rep, m.stride) for index, m in enumerate(members) if m.why is None and m.rep is not None]
        reps = [rep for _, _, rep, _ in eligible if rep is not None]
        self.emails = tuple(email for _, email, _, _ in eligible)
        self.positions = tuple(index for index, _, _, _ in eligible)
        self.reps = tuple(reps)
        self.strides = tuple(stride for _, _, _, stride in eligible)
        self.weights = tuple(rep.weight if rep.weight >= 1 else 1 for rep in reps)  # what least_loaded divides by
        self.tier = rule.tier if rule is not None else None
        self.tier_strict = rule.tier_strict if rule is not None else False
        self.rule_name = rule.name if rule is not None else None
        self.in_tier = tuple(self.tier is None or rep.tier == self.tier for rep in reps)
        opens = [(r, rep.max_open_leads) for r, rep in enumerate(reps) if rep.max_open_leads is not None]
        days = [(r, rep.max_leads_per_day) for r, rep in enumerate(reps) if rep.max_leads_per_day is not None]
        self.open_cap_rows = tuple(r for r, _ in opens)
        self.open_cap_emails = tuple(self.emails[r] for r, _ in opens)
        self.open_caps: tuple[int, ...] = tuple(c for _, c in opens if c is not None)
        self.day_cap_rows = tuple(r for r, _ in days)
        self.day_cap_emails = tuple(self.emails[r] for r, _ in days)
        self.day_caps: tuple[int, ...] = tuple(c for _, c in days if c is not None)
        self.all_caps = (*self.open_caps, *self.day_caps)
        self.cap_emails = frozenset((*self.open_cap_emails, *self.day_cap_emails))
        # The lineage, its capacity version and the entry its counts gave (see LiveCounters.cap_version).
        self.capacity: tuple[LiveCounters, int, Entry] | None = None
        self.set_ops: dict[tuple[str, int], CounterOp] = {}  # (key, value) -> the op setting it in the pool's scope
        self.skill_rows: dict[str, dict[str, frozenset[int]]] | None = None  # built on first best_match
        # Which capped rows (open caps, then day caps) are full, and their counts -> their entry.
        self.variants: dict[tuple[tuple[bool, ...], tuple[int, ...]], Entry] = {}
        self.unmatched: dict[tuple[Any, ...], list[int]] = {}  # a lead's skill needs -> per row, minus the needs it meets
        self.base_entry = self.entry(snap, {})  # no one blocked: the same answer for every lead

    def entry(self, snap: AvailabilitySnapshot, blocked: Mapping[int, str]) -> Entry:
        """Rows and verdicts when the `blocked` rows cannot take the lead; the tier filter then looks again.

        The tier rule: with a rule tier, only reps of that tier, unless none is eligible and the tier
        is not strict (then any tier).
        """
        cands = list(self.base)
        for row, why in blocked.items():
            cands[self.positions[row]] = snap.candidate(self.emails[row], False, why)
        rows = [row for row in range(len(self.emails)) if row not in blocked]
        tier_reasons: tuple[str, ...] = ()
        if self.tier is not None:
            in_tier = [row for row in rows if self.in_tier[row]]
            if in_tier or self.tier_strict:
                for row in rows:
                    if not self.in_tier[row]:
                        rep = self.reps[row]
                        cands[self.positions[row]] = snap.candidate(self.emails[row], False, f"tier {rep.tier}; rule {self.rule_name!r} wants {self.tier}")
                rows = in_tier
                tier_reasons = (f"tier {self.tier} only",)
            else:
                tier_reasons = (f"no eligible {self.tier} rep; any tier",)
        emails = tuple(self.emails[r] for r in rows)
        strides = tuple(self.strides[r] for r in rows)
        return Entry(
            tuple(rows), emails, strides, tuple(self.weights[r] for r in rows), tuple(cands), tier_reasons, rotation(emails, strides),
            blocked, {}, {}, {}, {},
        )

    def skills_index(self, snap: AvailabilitySnapshot) -> Mapping[str, Mapping[str, frozenset[int]]]:
        """skill -> value -> rows whose rep has it, so a lead's matches are counted per value, not per rep."""
        if self.skill_rows is None:
            index: dict[str, dict[str, set[int]]] = {}
            for row, (email, rep) in enumerate(zip(self.emails, self.reps, strict=True)):
                for skill, values in snap.skills(email, rep).items():
                    for value in values:
                        index.setdefault(skill, {}).setdefault(value, set()).add(row)
            self.skill_rows = {k: {v: frozenset(rows) for v, rows in by_value.items()} for k, by_value in index.items()}
        return self.skill_rows


def capacity_entry(snap: AvailabilitySnapshot, plan: Plan, live: LiveCounters) -> Entry:
    """The plan's entry for the lineage's counts, recomputed only after a change touched one of its capped reps at a cap."""
    memo = plan.capacity
    if memo is not None and memo[0] is live and memo[1] == live.cap_version and live.caps is snap.cap_table and live.day == snap.day:
        return memo[2]
    live.watch(snap.caps(), snap.day)
    memo = plan.capacity
    version = live.cap_version
    if memo is not None and memo[0] is live:
        if memo[1] == version:
            return memo[2]
        if memo[1] >= live.epoch and plan.cap_emails.isdisjoint(live.bumps[memo[1]:version]):
            plan.capacity = (live, version, memo[2])
            return memo[2]
    empty: Mapping[str, int] = {}
    entry = _counted_entry(snap, plan, live.values.get(OPEN_SCOPE, empty), live.values.get(snap.day, empty))
    plan.capacity = (live, version, entry)
    return entry


def _counted_entry(snap: AvailabilitySnapshot, plan: Plan, open_counts: Mapping[str, int], day_counts: Mapping[str, int]) -> Entry:
    """The plan's entry for the capped reps' current counts: who is full, at what count (the verdicts quote it)."""
    counts = [*map(open_counts.get, plan.open_cap_emails, repeat(0)), *map(day_counts.get, plan.day_cap_emails, repeat(0))]
    full = tuple(map(ge, counts, plan.all_caps))  # reps.is_full over the row of caps
    if True not in full:
        return plan.base_entry
    key = (full, tuple(compress(counts, full)))
    found = plan.variants.get(key)
    if found is not None:
        return found
    n_open = len(plan.open_caps)
    blocked: dict[int, str] = {}
    for row, n, cap, is_full in zip(plan.open_cap_rows, counts[:n_open], plan.open_caps, full[:n_open], strict=True):
        if is_full:
            blocked[row] = open_cap_reason(n, cap)
    for row, n, cap, is_full in zip(plan.day_cap_rows, counts[n_open:], plan.day_caps, full[n_open:], strict=True):
        if is_full and row not in blocked:
            blocked[row] = day_cap_reason(n, cap)
    if len(plan.variants) >= MEMO_LIMIT:
        plan.variants.clear()
    found = plan.variants[key] = plan.entry(snap, blocked)
    return found


def exclusion_entry(snap: AvailabilitySnapshot, plan: Plan, entry: Entry, crm: str, exclude: Collection[str]) -> Entry:
    """`entry` with the reps who had the lead already blocked (SLA reassignment): that verdict comes before capacity."""
    had = {
        row: "already had this lead"
        for row, (email, rep) in enumerate(zip(plan.emails, plan.reps, strict=True))
        if email in exclude or rep.owner_ids.get(crm) in exclude
    }
    if not had:
        return entry
    return plan.entry(snap, {**entry.blocked, **had})


def skill_entry(
    snap: AvailabilitySnapshot, plan: Plan, entry: Entry, lead: Lead, place: Place, compiled: CompiledRouting,
    required: tuple[str, ...], needs: tuple[Any, ...],
) -> Entry:
    """`entry` with the reps lacking one of the rule's required skills blocked too (checked after capacity, before tier)."""
    memo = entry.by_skills
    key = (required, needs)
    found = memo.get(key)
    if found is not None:
        return found
    wanted = lead_skills(lead, place, compiled)
    blocked = dict(entry.blocked)
    for row, (email, rep) in enumerate(zip(plan.emails, plan.reps, strict=True)):
        if row not in blocked:
            why = lacking_skill(wanted, snap.skills(email, rep), required)
            if why is not None:
                blocked[row] = why
    found = entry if len(blocked) == len(entry.blocked) else plan.entry(snap, blocked)
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = found
    return found


def rated_entry(entry: Entry, pool: CompiledPool, rates: Mapping[str, float]) -> Entry:
    """`entry` with strides scaled by conversion rate: weight x (rate / the pool's mean rate), within CONVERSION_FACTOR_BOUNDS.

    Reps without a rate (too few routed leads) keep their configured weight; so does everyone when no rate is known.
    """
    known = [rates[m] for m in pool.members if m in rates]
    mean = sum(known) / len(known) if known else 0.0
    lo, hi = CONVERSION_FACTOR_BOUNDS
    strides = tuple(
        max(1, round(TURN / (weight * (min(hi, max(lo, rates[email] / mean)) if email in rates and mean > 0 else 1.0))))
        for email, weight in zip(entry.emails, entry.weights, strict=True)
    )
    if strides == entry.strides:
        return entry
    found = entry.by_strides.get(strides)
    if found is None:
        if len(entry.by_strides) >= MEMO_LIMIT:
            entry.by_strides.clear()
        found = entry.by_strides[strides] = entry._replace(strides=strides, race=rotation(entry.emails, strides), groups={}, by_strides={})
    return found


def tie_group(primary: Sequence[int], race: Rotation) -> Group:
    """The positions with the smallest primary and their own race (member order kept, so ties break alike)."""
    low = min(primary)
    positions = tuple(j for j, value in enumerate(primary) if value == low)
    return Group(low, positions, rotation([race.emails[j] for j in positions], [race.strides[j] for j in positions]))


def unmatched(plan: Plan, snap: AvailabilitySnapshot, lead: Lead, place: Place, compiled: CompiledRouting, key: tuple[Any, ...]) -> list[int]:
    """Per plan row, minus the number of the lead's skill needs the rep meets (leads with the same needs, `key`, share it)."""
    found = plan.unmatched.get(key)
    if found is not None:
        return found
    found = [0] * len(plan.emails)
    index = plan.skills_index(snap)
    for skill, values in lead_skills(lead, place, compiled).items():
        by_value = index.get(skill)
        if values and by_value:
            hit: set[int] = set()
            for value in values:
                hit.update(by_value.get(value, ()))
            for row in hit:
                found[row] -= 1
    if len(plan.unmatched) >= MEMO_LIMIT:
        plan.unmatched.clear()
    plan.unmatched[key] = found
    return found
