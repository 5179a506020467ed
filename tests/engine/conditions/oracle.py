"""The conditions oracle: a condition evaluated the straightforward way, a closure per node over `field_test`.

Production runs conditions as generated source (`condition_source`, and `compile_condition` built
from it); property tests compare that with this tree walk. The meaning of each op, `field_test`, is
the one definition both use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.core.models import Lead
from connector.engine.conditions import CONTEXT_FIELD_KINDS, Condition, Predicate, field_test


def _read(name: str, lead: Any, ctx: Mapping[str, Any]) -> Any:
    if name in CONTEXT_FIELD_KINDS:
        return ctx.get(name)
    if name.startswith("extra."):
        return lead.extra.get(name[len("extra."):])
    if name.startswith("engagement."):
        return lead.engagement.get(name[len("engagement."):])
    if name.startswith("properties."):
        return lead.properties.get(name[len("properties."):])
    if name in ("email_domain", "full_name", "name", "kind"):
        return getattr(lead, name)
    return ctx[name] if name in ctx else getattr(lead, name)


def predicate(cond: Condition | None) -> Predicate:
    """`(lead, ctx) -> bool` for a validated condition; fields are read as the engine reads them (events too)."""
    if cond is None:
        return lambda lead, ctx: True
    if cond.field is not None:
        test, name = field_test(cond.op or "eq", cond.value), cond.field
        return lambda lead, ctx: test(_read(name, lead, ctx))
    if cond.all is not None:
        parts = tuple(predicate(c) for c in cond.all)
        return lambda lead, ctx: all(p(lead, ctx) for p in parts)
    if cond.any is not None:
        parts = tuple(predicate(c) for c in cond.any)
        return lambda lead, ctx: any(p(lead, ctx) for p in parts)
    inner = predicate(cond.not_)
    return lambda lead, ctx: not inner(lead, ctx)


def evaluate(cond: Condition | None, lead: Lead, ctx: Mapping[str, Any] | None = None) -> bool:
    return predicate(cond)(lead, ctx or {})
