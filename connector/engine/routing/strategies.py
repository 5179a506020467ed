"""Picking one rep of a pool for a lead: the strategy (rule, experiment arm or pool), and round robin, least loaded, best match.

Round robin is weighted "earliest virtual finish" scheduling (stride scheduling). Each pool keeps,
per rep, a *pass* (virtual time at which the rep's turns so far are used up) and a pool clock
(`~vt`, the virtual finish of the last turn handed out). Serving a rep of weight w moves its pass
by TURN / w; the eligible rep with the smallest `pass + stride` gets the lead. Consequences:

* A rep skipped for being unavailable keeps its pass, so it is first in line when it is back:
  it does not lose its turn.
* A rep back after a long absence (or newly added) has a pass far behind the others. Its pass is
  lifted to `~vt - stride` when it is considered, so it gets the next turn — one turn, then it
  rotates normally — instead of a week's backlog in one burst. It never gets ahead of its place.
* Among reps continuously eligible over any window of decisions, turns per unit weight differ
  by at most one: |n_a / w_a - n_b / w_b| <= 1 (tested as a property).

least_loaded ranks by open leads per unit weight and best_match by how many of the lead's skill
needs a rep meets; both break ties by the round-robin race. The key compared is always
(strategy's primary, finish, start, member order).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import repeat
from operator import add, floordiv, mul, sub
from typing import Any, NamedTuple

from connector.core.keys import OPEN_SCOPE, VT_KEY
from connector.core.models import Candidate, Lead, Rep
from connector.engine.routing.compile import MEMO_LIMIT, CompiledPool, CompiledRule, Place
from connector.engine.routing.config import TURN
from connector.engine.routing.experiments import assign_arm
from connector.engine.routing.plan import Chosen, Entry, Plan, Rotation, capacity_entry, exclusion_entry, rated_entry, skill_entry, tie_group, unmatched
from connector.engine.routing.reps import needs_key
from connector.engine.routing.snapshot import AvailabilitySnapshot, RoutingContext
from connector.engine.routing.state import CounterOp, LiveCounters, new_counter_op
from connector.engine.scoring import frozen_builder

# Shared pass / clock ops per plan: they repeat only while the pool clock stands still, so keep few.
SET_OP_MEMO_LIMIT = 256
_candidate = frozen_builder(Candidate)


class Pick(NamedTuple):
    """One pool's answer for a lead: the rep (None: nobody eligible), how, every member's verdict, and the counter ops."""

    email: str | None
    rep: Rep | None
    strategy: str
    arm: str | None
    candidates: tuple[Candidate, ...]
    reasons: tuple[str, ...]
    ops: tuple[CounterOp, ...]


def conversion_rates(routed: Mapping[str, int], converted: Mapping[str, int], min_leads: int) -> dict[str, float]:
    """rep email -> converted / routed, for reps with at least `min_leads` routed leads.

    Reps with fewer have no rate yet and keep their configured weight: a handful of leads says
    little about a rep. A rep credited with more conversions than routed leads (leads routed
    before the counts began) counts as 1.0.
    """
    return {email: min(1.0, converted.get(email, 0) / n) for email, n in routed.items() if n >= min_leads}


def choose_strategy(pool: CompiledPool, rule: CompiledRule | None, lead: Lead) -> tuple[str, str | None, list[str]]:
    """The strategy a lead is picked by (the rule's, its experiment arm's, or the pool's), the arm, and why."""
    strategy = (rule.strategy if rule is not None else None) or pool.strategy
    if rule is None or rule.experiment is None:
        return strategy, None, []
    exp = rule.experiment
    which = assign_arm(exp.name, lead.key, exp.treatment_share)
    strategy = exp.treatment if which == "treatment" else exp.control
    return strategy, f"{exp.name}:{which}", [f"experiment {exp.name!r}: arm {which} ({strategy})"]


def earliest(race: Rotation, rr: Mapping[str, int], vt: int) -> tuple[int, int]:
    """(position, finish) of the smallest (finish, start, position) in round robin.

    finish = max(end, vt) with end = pass + stride, start = finish - stride: every rep with end <= vt
    finishes at vt and beats those with end > vt; among those, the largest stride starts first.
    So the first rep in tie order with end <= vt wins (usually near the front: races are small,
    and a plain loop stops there); only when there is none are all ends compared.
    """
    get = rr.get
    for email, stride, j in race.ranked:
        if get(email, 0) + stride <= vt:
            return j, vt
    strides = race.strides
    ends = list(map(add, map(get, race.emails, repeat(0)), strides))
    first = min(ends)
    if ends.count(first) == 1:
        return ends.index(first), first
    return min(zip(ends, map(sub, ends, strides), range(len(ends))))[-1], first


def earliest_among(race: Rotation, rr: Mapping[str, int], vt: int, primary: Sequence[int], low: int) -> tuple[int, int]:
    """`earliest` among the positions whose `primary` is `low` (least_loaded's ties on load)."""
    get = rr.get
    for email, stride, j in race.ranked:
        if primary[j] == low and get(email, 0) + stride <= vt:
            return j, vt
    best: tuple[int, int, int] | None = None
    for j, (email, stride) in enumerate(zip(race.emails, race.strides)):
        if primary[j] == low:
            end = get(email, 0) + stride
            key = (end, end - stride, j)
            if best is None or key < best:
                best = key
    assert best is not None, "low is one of the primaries"
    return best[2], best[0]


def narrowed_entry(
    snap: AvailabilitySnapshot, plan: Plan, entry: Entry, pool: CompiledPool, rule: CompiledRule | None, lead: Lead, place: Place,
    ctx: RoutingContext, exclude: Collection[str], needs: tuple[Any, ...],
) -> Entry:
    """The capacity entry narrowed for this lead: who had it already, then required skills; then conversion-weighted strides."""
    if exclude:
        entry = exclusion_entry(snap, plan, entry, lead.crm, exclude)
    if rule is not None and rule.require_skills:
        entry = skill_entry(snap, plan, entry, lead, place, snap.compiled, rule.require_skills, needs)
    if pool.weight_by_conversion and ctx.conversion_rates:
        entry = rated_entry(entry, pool, ctx.conversion_rates)
    return entry


def pick_rep(
    snap: AvailabilitySnapshot, pool: CompiledPool, rule: CompiledRule | None, lead: Lead, place: Place, ctx: RoutingContext,
    live: LiveCounters, exclude: Collection[str] = (),
) -> Pick:
    """One eligible rep of `pool` by the rule's (or experiment arm's, or pool's) strategy, with every member's verdict.

    No loop over every member: the plan's entry holds the verdicts, loads run as C-level `map`s over
    its rows, and the race stops at its first eligible rep (`earliest`).
    """
    strategy, arm, reasons = choose_strategy(pool, rule, lead)
    plan = snap.plan(pool, rule, lead.crm, ctx.known_owner_ids)
    needs = needs_key(lead, place, snap.compiled) if strategy == "best_match" or (rule is not None and rule.require_skills) else ()
    if not plan.all_caps:
        entry = plan.base_entry
    else:  # the capacity memo, checked here first: most leads find it valid (see capacity_entry)
        memo = plan.capacity
        valid = memo is not None and memo[0] is live and memo[1] == live.cap_version and live.caps is snap.cap_table and live.day == snap.day
        entry = memo[2] if valid and memo is not None else capacity_entry(snap, plan, live)
    if exclude or needs or (pool.weight_by_conversion and ctx.conversion_rates):
        entry = narrowed_entry(snap, plan, entry, pool, rule, lead, place, ctx, exclude, needs)
    if entry.tier_reasons:
        reasons += entry.tier_reasons
    if not entry.rows:
        return Pick(None, None, strategy, arm, entry.candidates, tuple(reasons), ())
    rr = live.values.get(pool.scope) or {}
    vt = rr.get(VT_KEY, 0)
    i, finish, line = _choose(strategy, snap, plan, entry, lead, place, live, rr, vt, needs)
    email = entry.emails[i]
    rep = plan.reps[entry.rows[i]]
    position = plan.positions[entry.rows[i]]
    chosen = entry.chosen.get(position)
    if chosen is None:
        cands = entry.candidates
        chosen = entry.chosen[position] = Chosen(
            (*cands[:position], _candidate(email, True, "chosen"), *cands[position + 1:]),
            snap.load_ops(email),  # the plan serves snapshots of one day only
            f"{email}: next in weighted rotation (weight {rep.weight})",
        )
    reasons.append(line or chosen.rotation_reason)
    # While reps come back behind the pool clock, picks set passes to the same vt: share those ops.
    set_ops = plan.set_ops
    pass_op = set_ops.get((email, finish))
    if pass_op is None:
        if len(set_ops) >= SET_OP_MEMO_LIMIT:
            set_ops.clear()
        pass_op = set_ops[(email, finish)] = new_counter_op(pool.scope, email, "set", finish)
    clock = finish if finish > vt else vt
    clock_op = set_ops.get((VT_KEY, clock))
    if clock_op is None:
        clock_op = set_ops[(VT_KEY, clock)] = new_counter_op(pool.scope, VT_KEY, "set", clock)
    open_op, day_op = chosen.load_ops
    return Pick(email, rep, strategy, arm, chosen.candidates, tuple(reasons), (pass_op, clock_op, open_op, day_op))


def _choose(
    strategy: str, snap: AvailabilitySnapshot, plan: Plan, entry: Entry, lead: Lead, place: Place, live: LiveCounters,
    rr: Mapping[str, int], vt: int, needs: tuple[Any, ...],
) -> tuple[int, int, str | None]:
    """(position in the entry's rows, finish, reason line; None for round robin's shared one) of the strategy's pick."""
    emails = entry.emails
    if strategy == "least_loaded":
        open_get = (live.values.get(OPEN_SCOPE) or {}).get
        primary = list(map(floordiv, map(mul, map(open_get, emails, repeat(0)), repeat(TURN)), entry.weights))
        low = min(primary)
        if primary.count(low) == 1:
            i = primary.index(low)
            finish = max(rr.get(emails[i], 0) + entry.strides[i], vt)
        else:
            i, finish = earliest_among(entry.race, rr, vt, primary, low)
        rep = plan.reps[entry.rows[i]]
        return i, finish, f"{emails[i]}: fewest open leads per weight ({open_get(emails[i], 0)} open, weight {rep.weight})"
    if strategy == "best_match":
        group = entry.groups.get(needs)
        if group is None:
            group = tie_group(list(map(unmatched(plan, snap, lead, place, snap.compiled, needs).__getitem__, entry.rows)), entry.race)
            if len(entry.groups) >= MEMO_LIMIT:
                entry.groups.clear()
            entry.groups[needs] = group
        k, finish = earliest(group.race, rr, vt)
        i = group.positions[k]
        return i, finish, f"{emails[i]}: best skills match ({-group.low} of the lead's needs), next in rotation among ties"
    i, finish = earliest(entry.race, rr, vt)
    return i, finish, None
