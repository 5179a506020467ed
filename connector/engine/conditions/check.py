"""Checks of a condition against the fields it names: known fields, and ops and values that fit their type."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from connector.core.errors import ConfigProblem
from connector.core.models import lead_field_types
from connector.core.spelling import unknown_name
from connector.engine.conditions.model import CONTEXT_FIELD_KINDS, OPS_BY_KIND, Condition, field_kind

# Without a near miss, an unknown field's message points at the kinds of fields, not at a list of 50 names.
LEAD_FIELDS_HINT = (
    "use a lead attribute (country, state, email_domain, employees, industry, title, lead_source, ...), "
    "extra.NAME (a mapped CRM property), raw.NAME (a field's CRM text, e.g. raw.country) or engagement.NAME"
)


def check_condition(
    cond: Condition,
    path: str,
    extra_kinds: Mapping[str, str] | None = None,
    *,
    kind_of: Callable[[str], str | None] | None = None,
    known_hint: str | None = None,
) -> list[ConfigProblem]:
    """Problems with field names and op/type fit, each with its key path; empty when fine.

    `kind_of` replaces the lead-field universe (e.g. event fields: name, kind, properties.NAME);
    `known_hint` is then what the unknown-field message lists.
    """
    problems: list[ConfigProblem] = []
    if cond.field is not None:
        kind = kind_of(cond.field) if kind_of is not None else field_kind(cond.field, extra_kinds)
        if kind is None:
            problems.append(ConfigProblem(f"{path}.field", _unknown_field(cond.field, extra_kinds, known_hint)))
        else:
            problems += _check_fit(cond, kind, path)
    for key, subs in (("all", cond.all), ("any", cond.any)):
        for i, sub in enumerate(subs or ()):
            problems += check_condition(sub, f"{path}.{key}[{i}]", extra_kinds, kind_of=kind_of, known_hint=known_hint)
    if cond.not_ is not None:
        problems += check_condition(cond.not_, f"{path}.not", extra_kinds, kind_of=kind_of, known_hint=known_hint)
    return problems


def _unknown_field(name: str, extra_kinds: Mapping[str, str] | None, known_hint: str | None) -> str:
    """`unknown field 'contry'; did you mean 'country'?`; without a near miss, where the known fields are."""
    if known_hint is not None:
        return unknown_name("field", name, [n.strip() for n in known_hint.split(",")], otherwise=f"known: {known_hint}")
    known = sorted(set(lead_field_types()) | set(CONTEXT_FIELD_KINDS) | set(extra_kinds or ()))
    return unknown_name("field", name, known, otherwise=LEAD_FIELDS_HINT)


def _check_fit(cond: Condition, kind: str, path: str) -> list[ConfigProblem]:
    """Whether a field test's op applies to its field's kind, and its value to the op."""
    if cond.op not in OPS_BY_KIND[kind]:
        allowed = ", ".join(sorted(OPS_BY_KIND[kind]))
        return [ConfigProblem(f"{path}.op", f"op {cond.op!r} does not apply to {kind} field {cond.field!r}; allowed: {allowed}")]
    if kind == "number" and cond.op in ("gt", "gte", "lt", "lte", "between"):
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return [ConfigProblem(f"{path}.value", f"op {cond.op!r} on number field {cond.field!r} needs numbers, got {cond.value!r}")]
        if cond.op == "between" and values[0] > values[1]:
            return [ConfigProblem(f"{path}.value", f"between needs [low, high] with low <= high, got {cond.value!r}")]
    elif kind == "bool" and cond.op in ("eq", "ne") and not isinstance(cond.value, bool):
        return [ConfigProblem(f"{path}.value", f"bool field {cond.field!r} compares to true or false, got {cond.value!r}")]
    return []
