"""Predicates `(lead, ctx) -> bool` generated from a condition's source, with a pluggable way to read fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connector.core.models import Lead
from connector.engine.conditions.model import CONTEXT_FIELD_KINDS, Condition, Predicate
from connector.engine.conditions.source import condition_source


def _getter(name: str) -> Callable[[Lead, Mapping[str, Any]], Any]:
    if name in CONTEXT_FIELD_KINDS:
        return lambda lead, ctx: ctx.get(name)
    if name.startswith("extra."):
        key = name[len("extra."):]
        return lambda lead, ctx: lead.extra.get(key)
    if name.startswith("engagement."):
        key = name[len("engagement."):]
        return lambda lead, ctx: lead.engagement.get(key)
    if name.startswith("raw."):
        key = name[len("raw."):]
        return lambda lead, ctx: lead.raw.get(key)
    if name in ("email_domain", "full_name"):
        return lambda lead, ctx: getattr(lead, name)
    return lambda lead, ctx: ctx[name] if name in ctx else getattr(lead, name)


def compile_condition(
    cond: Condition | None,
    getter: Callable[[str], Callable[[Any, Mapping[str, Any]], Any]] | None = None,
) -> Predicate:
    """Turn a validated condition into a predicate `(lead, ctx) -> bool`. None matches everything.

    The predicate is generated from `condition_source`, the one form of a condition the engine runs:
    each field the condition names is read once, then the inlined tests decide. `getter` replaces how
    a field name is read (e.g. from an Event instead of a Lead).
    """
    if cond is None:
        return _always
    constants: dict[str, Any] = {}
    reads: dict[str, str] = {}

    def value_of(name: str) -> str:
        return reads.setdefault(name, f"_v{len(reads)}")

    test = condition_source(cond, value_of, constants)
    read = getter or _getter
    lines = [f"    {local} = _g{i}(lead, ctx)" for i, local in enumerate(reads.values())]
    ns: dict[str, Any] = {**constants, **{f"_g{i}": read(name) for i, name in enumerate(reads)}}
    code = "\n".join(["def predicate(lead, ctx):", *lines, f"    return {test}"]) + "\n"
    exec(compile(code, "<condition>", "exec"), ns)  # noqa: S102 - generated from a validated condition
    predicate: Predicate = ns["predicate"]
    return predicate


def _always(lead: Lead, ctx: Mapping[str, Any]) -> bool:
    return True
