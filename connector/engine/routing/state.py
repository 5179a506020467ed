"""Routing state: the counters (round-robin passes, loads) as an immutable snapshot, changes to them, and undo.

Scopes (names in connector.core.keys): "rr:<pool>" -> {rep email: pass, "~vt": pool clock};
"load:open" -> {rep email: open leads}; "load:day:<YYYY-MM-DD>" -> {rep email: leads assigned that day}.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from connector.core.keys import OPEN_SCOPE
from connector.engine.routing.config import normalize_email
from connector.engine.scoring import frozen_builder


@dataclass(frozen=True, slots=True)
class CounterOp:
    """One counter change the store applies: `add` a delta or `set` a value of scope/key."""

    scope: str
    key: str
    kind: Literal["add", "set"]
    value: int


@dataclass(frozen=True, slots=True)
class StateChange:
    ops: tuple[CounterOp, ...] = ()

    def __add__(self, other: StateChange) -> StateChange:
        return StateChange(self.ops + other.ops)


NO_CHANGE = StateChange()
new_counter_op = frozen_builder(CounterOp)
new_state_change = frozen_builder(StateChange)


class RoutingState:
    """A snapshot of the routing counters: scope -> key -> value (an immutable value; equal when the counters are).

    A batch applies hundreds of small changes, each to the newest state. So the states of one batch
    share one set of counters (`LiveCounters`) changed in place: the newest state reads them directly, an
    older one is rebuilt when read, by undoing the changes made since (each state keeps the undo
    of the change applied to it). Reads of any state give what they gave before; only the cost moves.
    """

    __slots__ = ("_counters", "_live", "_next", "_undo")

    _counters: dict[str, dict[str, int]] | None  # built (or given) counters; None until read
    _live: LiveCounters | None  # the lineage's shared counters: ours while we are its tip
    _next: RoutingState | None  # the state the change after us made, and how to undo it
    _undo: _Undo | None

    def __init__(self, counters: Mapping[str, Mapping[str, int]] | None = None) -> None:
        _set_counters(self, {scope: dict(values) for scope, values in counters.items()} if counters else {})
        _set_live(self, None)
        _set_next(self, None)
        _set_undo(self, None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RoutingState is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RoutingState is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoutingState):
            return NotImplemented
        return self is other or self.counters == other.counters

    __hash__ = None  # type: ignore[assignment]  # a mutable-looking mapping inside: not hashable, as before

    def __repr__(self) -> str:
        return f"RoutingState(counters={self.counters!r})"

    @property
    def counters(self) -> Mapping[str, Mapping[str, int]]:
        counters = self._counters
        if counters is None:
            counters = _rebuild(self)
        return counters

    def get(self, scope: str, key: str) -> int:
        live = self._live
        values = (live.values if live is not None and live.tip is self else self.counters).get(scope)
        return values.get(key, 0) if values is not None else 0

    def scope(self, scope: str) -> Mapping[str, int]:
        live = self._live
        if live is not None and live.tip is self and self._counters is None:
            return dict(live.values.get(scope, ()))  # a copy: the live counters move on with the batch
        return self.counters.get(scope, {})


class _Undo(NamedTuple):
    """How to undo one change: its ops, each key's value before (None: absent), the scopes it created."""

    ops: tuple[CounterOp, ...]
    olds: list[int | None]
    created: list[str]


class LiveCounters:
    """The counters of the newest state of a lineage, changed in place, plus what capacity memos need.

    `cap_version` moves whenever a change touches a capped rep at or over its cap (or takes one
    there); `bumps[v - 1]` is the rep that made version v. A plan's capacity verdicts computed at
    one version hold until one of its capped reps is bumped (or `epoch`, a new caps table or day).
    """

    __slots__ = ("values", "tip", "caps", "day", "cap_version", "bumps", "epoch")

    def __init__(self, values: dict[str, dict[str, int]], tip: RoutingState) -> None:
        self.values = values
        self.tip = tip
        self.caps: Mapping[str, tuple[int | None, int | None]] | None = None  # rep email -> (open cap, day cap)
        self.day: str | None = None
        self.cap_version = 0
        self.bumps: list[str] = []
        self.epoch = 0

    def watch(self, caps: Mapping[str, tuple[int | None, int | None]], day: str) -> None:
        """Track capacity for these caps and this day's scope (a new table or day starts a new version)."""
        if self.caps is not caps or self.day != day:
            self.caps, self.day = caps, day
            self.bumps.append("")  # no rep: the epoch says it all
            self.cap_version = self.epoch = len(self.bumps)


# Slot setters: states are immutable to everyone else; these build and link them.
_new_state = object.__new__
_set_counters = vars(RoutingState)["_counters"].__set__
_set_live = vars(RoutingState)["_live"].__set__
_set_next = vars(RoutingState)["_next"].__set__
_set_undo = vars(RoutingState)["_undo"].__set__


def _rebuild(state: RoutingState) -> dict[str, dict[str, int]]:
    """An older state's counters: the newest built ones, with the changes made since undone (newest first)."""
    undos: list[_Undo] = []
    cur = state
    while cur._counters is None and cur._next is not None and cur._undo is not None:
        undos.append(cur._undo)
        cur = cur._next
    if cur._counters is not None:
        base: Mapping[str, dict[str, int]] = cur._counters
    else:
        live = cur._live
        assert live is not None and live.tip is cur, "a lazy routing state is the tip of its lineage or has a successor"
        base = live.values
    counters = {scope: dict(values) for scope, values in base.items()}
    for ops, olds, created in reversed(undos):
        for op, old in zip(reversed(ops), reversed(olds), strict=True):
            if old is None:
                del counters[op.scope][op.key]
            else:
                counters[op.scope][op.key] = old
        for scope in created:
            del counters[scope]
    _set_counters(state, counters)
    return counters


def read_counters(state: RoutingState) -> Mapping[str, Mapping[str, int]]:
    """The state's counters for reading within one call: the shared live ones when it is the tip (no copy)."""
    live = state._live
    if live is not None and live.tip is state:
        return live.values
    return state.counters


def live_counters(state: RoutingState) -> LiveCounters:
    """The shared counters with `state` as their tip (a copy of its counters when it is not the tip)."""
    live = state._live
    if live is not None and live.tip is state:
        return live
    live = LiveCounters({scope: dict(values) for scope, values in state.counters.items()}, state)
    _set_live(state, live)
    return live


def state_from_counters(counters: Mapping[str, Mapping[str, int]]) -> RoutingState:
    """The snapshot the store's counters describe (copied, so later store writes do not leak in)."""
    return RoutingState(counters)


def apply_change(state: RoutingState, change: StateChange) -> RoutingState:
    """The state after `change`: lets a batch route many leads in memory against an evolving snapshot.

    `state` stays as it was (it keeps how to undo the change); the new state is the lineage's tip.
    """
    ops = change.ops
    if not ops:
        return state
    live = state._live
    if live is None or live.tip is not state:
        live = live_counters(state)
    values = live.values
    caps, day = live.caps, live.day
    olds: list[int | None] = []
    created: list[str] = []
    last_scope: str | None = None
    scope_values: dict[str, int] = {}
    for op in ops:
        scope, key = op.scope, op.key
        if scope is not last_scope:  # a change's ops come grouped by scope (rr, rr, open, day)
            last_scope = scope
            found = values.get(scope)
            if found is None:
                found = values[scope] = {}
                created.append(scope)
            scope_values = found
        old = scope_values.get(key)
        new = scope_values[key] = (old or 0) + op.value if op.kind == "add" else op.value
        olds.append(old)
        if caps is not None and (scope == OPEN_SCOPE or scope == day):
            limits = caps.get(key)
            if limits is not None:
                cap = limits[0] if scope == OPEN_SCOPE else limits[1]
                if cap is not None and (new >= cap or (old or 0) >= cap):
                    live.bumps.append(key)
                    live.cap_version = len(live.bumps)
    child = _new_state(RoutingState)
    _set_counters(child, None)
    _set_live(child, live)
    _set_next(child, None)
    _set_undo(child, None)
    _set_next(state, child)
    _set_undo(state, _Undo(ops, olds, created))
    live.tip = child
    return child



def release_change(rep_email: str) -> StateChange:
    """One open lead fewer for a rep (the pipeline applies it when a routed lead closes or converts)."""
    return StateChange((CounterOp(OPEN_SCOPE, normalize_email(rep_email), "add", -1),))
