"""What a run did to each lead, counted once per lead: the figures a summary, the demo and the report share.

Definitions (the README glossary says the same):
- lead: one CRM record (crm + id); a lead read twice in a run (the waiting pass, then the changed stream) counts once.
- decided: each lead's decision in the run, by kind: `routed` (the connector set a new owner), `kept` (the
  owner stays: routed before, or a person's / account's owner kept), `waiting` (nobody available yet), `unrouted`
  (no routing configured, or no pool or queue).
- routed, by how (`routed_by`): `rule` (a rule's pool), `fallback_pool`, `account_match`, `contact_match`,
  `fallback_queue` (a queue, not a rep), `reassigned` (an SLA reassignment).
- a lead routed earlier in the same run stays routed when it is read again (its second decision is `kept`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.core.models import RoutingDecision

DECISION_KINDS = ("routed", "kept", "waiting", "unrouted")
ROUTED_BY = ("rule", "fallback_pool", "account_match", "contact_match", "fallback_queue", "reassigned")


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """One lead's grade and decision in a run (`routed_by` / `rep` only for routed leads; `rep` None for a queue)."""

    grade: str
    decision: str
    routed_by: str | None = None
    rep: str | None = None


def outcome_of(decision: RoutingDecision | None, grade: str) -> LeadOutcome:
    """A routing decision as one of the decision kinds, with how the lead was routed."""
    if decision is None or decision.kind == "none":
        return LeadOutcome(grade, "unrouted")
    if decision.kind == "wait":
        return LeadOutcome(grade, "waiting")
    if decision.kind == "kept" or not decision.owner_id:
        return LeadOutcome(grade, "kept")
    how = str(decision.kind)
    if how == "fallback":
        how = "fallback_pool" if decision.rep else "fallback_queue"
    return LeadOutcome(grade, "routed", how, decision.rep)


def merged(before: LeadOutcome | None, now: LeadOutcome) -> LeadOutcome:
    """A lead read again: its latest grade; a routing earlier in the run stays the run's decision."""
    if before is not None and before.decision == "routed" and now.decision != "routed":
        return LeadOutcome(now.grade, "routed", before.routed_by, before.rep)
    return now


@dataclass
class OutcomeTally:
    """Counters over lead outcomes; `remember` keeps each lead's outcome so that a re-read lead is counted once.

    A backfill reads each lead once and must stream in flat memory: its summary leaves `remember` off (None: unset).
    """

    remember: bool | None = True
    leads: int = 0
    grades: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    routed_by: Counter[str] = field(default_factory=Counter)
    leads_per_rep: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, LeadOutcome] = field(default_factory=dict, repr=False)

    def add(self, key: str, outcome: LeadOutcome) -> None:
        before = self.outcomes.get(key)
        if before is not None:
            self._count(before, -1)
            outcome = merged(before, outcome)
        else:
            self.leads += 1
        self._count(outcome, 1)
        if self.remember:
            self.outcomes[key] = outcome

    def _count(self, o: LeadOutcome, n: int) -> None:
        self.grades[o.grade] += n
        self.decisions[o.decision] += n
        if o.routed_by is not None:
            self.routed_by[o.routed_by] += n
        if o.decision == "routed" and o.rep:
            self.leads_per_rep[o.rep] += n


def positive(counts: Mapping[str, int]) -> dict[str, int]:
    """The non-zero counts, sorted by name."""
    return {k: n for k, n in sorted(counts.items()) if n > 0}


def tally(outcomes: Mapping[str, LeadOutcome]) -> OutcomeTally:
    """Counters over lead outcomes already merged per lead (e.g. a whole demo story)."""
    t = OutcomeTally()
    for key, outcome in outcomes.items():
        t.add(key, outcome)
    return t
