"""The condition model: the `Condition` shape, the ops each field kind allows, and readings of a condition tree."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.core.models import Lead, lead_field_types

Op = Literal[
    "eq", "ne", "in", "not_in", "contains", "not_contains", "matches",
    "gt", "gte", "lt", "lte", "between", "present", "missing",
]
OPS_BY_KIND: dict[str, frozenset[str]] = {
    "str": frozenset({"eq", "ne", "in", "not_in", "contains", "not_contains", "matches", "between", "present", "missing"}),
    "number": frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "present", "missing"}),
    "bool": frozenset({"eq", "ne", "present", "missing"}),
    "list": frozenset({"contains", "not_contains", "in", "not_in", "present", "missing"}),
    "datetime": frozenset({"present", "missing"}),
    "any": frozenset(Op.__args__),  # type: ignore[attr-defined]
}
# Fields the engine computes and passes in the context (not stored on Lead).
CONTEXT_FIELD_KINDS: dict[str, str] = {
    "score": "number",  # overridden by the model's score during routing
    "grade": "str",
    "model": "str",
    "bant": "str",
    "is_mql": "bool",
    "region": "str",
    "is_free_mail": "bool",
    "is_competitor": "bool",
}

Predicate = Callable[[Lead, Mapping[str, Any]], bool]


class Condition(BaseModel):
    """One condition: a field test, or `all` / `any` / `not` of conditions.

    TOML: `{ field = "country", op = "in", value = ["US", "CA"] }`,
    `{ all = [ {...}, {...} ] }`, `{ not = {...} }`. String comparisons ignore case.
    Fields: any Lead attribute, `extra.NAME`, `engagement.NAME`, `raw.NAME` (the CRM's own text of a mapped
    field, e.g. raw.country), or a context field (score, grade, model, bant, is_mql, region, is_free_mail,
    is_competitor). A state may be written with its country prefix ("US-CA"): it compares as "CA".
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str | None = None
    op: Op | None = None
    value: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="before")
    @classmethod
    def _state_codes(cls, data: Any) -> Any:
        """`state in ["US-CA"]` as `state in ["CA"]`: lead states are ISO 3166-2 codes without the country prefix."""
        if isinstance(data, dict) and data.get("field") == "state" and data.get("value") is not None:
            value = data["value"]
            data = {**data, "value": [_bare_state(v) for v in value] if isinstance(value, list) else _bare_state(value)}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [self.field is not None, self.all is not None, self.any is not None, self.not_ is not None]
        if sum(forms) != 1:
            raise ValueError("a condition is exactly one of: {field, op, value}, {all = [...]}, {any = [...]}, {not = {...}}")
        if self.field is not None:
            _check_field_test(self)
        if self.all is not None and not self.all:
            raise ValueError("'all' needs at least one condition")
        if self.any is not None and not self.any:
            raise ValueError("'any' needs at least one condition")
        return self


def _bare_state(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 3 and value[2] == "-" and value[:2].isalpha():
        return value[3:]
    return value


def _check_field_test(cond: Condition) -> None:
    """The shape of a field test's op and value (pydantic reports the ValueError with its path)."""
    if cond.op is None:
        raise ValueError(f"condition on field {cond.field!r} needs an op (one of {', '.join(OPS_BY_KIND['any'])})")
    if cond.op in ("present", "missing"):
        if cond.value is not None:
            raise ValueError(f"op {cond.op!r} takes no value")
    elif cond.value is None:
        raise ValueError(f"op {cond.op!r} needs a value")
    if cond.op in ("in", "not_in") and not isinstance(cond.value, list):
        raise ValueError(f"op {cond.op!r} needs a list value")
    if cond.op == "between" and not (isinstance(cond.value, list) and len(cond.value) == 2):
        raise ValueError("op 'between' needs a two-item list [low, high] (inclusive)")
    if cond.op == "matches":
        try:
            re.compile(str(cond.value))
        except re.error as exc:
            raise ValueError(f"op 'matches' value is not a valid regular expression: {exc}") from exc


class Leaf(NamedTuple):
    """One field test of a condition tree and its key path (`when.all[1]`)."""

    field: str
    path: str


def condition_leaves(cond: Condition | None, path: str) -> Iterator[Leaf]:
    """Every field test in a condition tree, in order of appearance, with its key path."""
    if cond is None:
        return
    if cond.field is not None:
        yield Leaf(cond.field, path)
    for key, subs in (("all", cond.all), ("any", cond.any)):
        for i, sub in enumerate(subs or ()):
            yield from condition_leaves(sub, f"{path}.{key}[{i}]")
    if cond.not_ is not None:
        yield from condition_leaves(cond.not_, f"{path}.not")


def condition_fields(cond: Condition | None) -> tuple[str, ...]:
    """Every field a condition names, in order of appearance (duplicates removed)."""
    return tuple(dict.fromkeys(leaf.field for leaf in condition_leaves(cond, "")))


def field_kind(name: str, extra_kinds: Mapping[str, str] | None = None) -> str | None:
    """The coarse type of a condition field, or None when no such field exists."""
    if extra_kinds and name in extra_kinds:
        return extra_kinds[name]
    if name in CONTEXT_FIELD_KINDS:
        return CONTEXT_FIELD_KINDS[name]
    if name.startswith("extra."):
        return "any"
    if name.startswith("engagement."):
        return "number"
    if name.startswith("raw."):
        return "str"
    return lead_field_types().get(name)


def describe(cond: Condition | None) -> str:
    """A short human reading of a condition, for explanations."""
    if cond is None:
        return "always"
    if cond.field is not None:
        return f"{cond.field} {cond.op}" + ("" if cond.value is None else f" {cond.value!r}")
    if cond.all is not None:
        return "(" + " and ".join(describe(c) for c in cond.all) + ")"
    if cond.any is not None:
        return "(" + " or ".join(describe(c) for c in cond.any) + ")"
    return f"not {describe(cond.not_)}"
