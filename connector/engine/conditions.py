"""Conditions over lead fields (and context such as score or grade), validated once and compiled to predicates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.core.errors import ConfigProblem
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
    Fields: any Lead attribute, `extra.NAME`, `engagement.NAME`, or a context field
    (score, grade, model, bant, is_mql, region, is_free_mail, is_competitor).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str | None = None
    op: Op | None = None
    value: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [self.field is not None, self.all is not None, self.any is not None, self.not_ is not None]
        if sum(forms) != 1:
            raise ValueError("a condition is exactly one of: {field, op, value}, {all = [...]}, {any = [...]}, {not = {...}}")
        if self.field is not None:
            if self.op is None:
                raise ValueError(f"condition on field {self.field!r} needs an op (one of {', '.join(OPS_BY_KIND['any'])})")
            if self.op in ("present", "missing"):
                if self.value is not None:
                    raise ValueError(f"op {self.op!r} takes no value")
            elif self.value is None:
                raise ValueError(f"op {self.op!r} needs a value")
            if self.op in ("in", "not_in") and not isinstance(self.value, list):
                raise ValueError(f"op {self.op!r} needs a list value")
            if self.op == "between" and not (isinstance(self.value, list) and len(self.value) == 2):
                raise ValueError("op 'between' needs a two-item list [low, high] (inclusive)")
            if self.op == "matches":
                try:
                    re.compile(str(self.value))
                except re.error as exc:
                    raise ValueError(f"op 'matches' value is not a valid regular expression: {exc}") from exc
        if self.all is not None and not self.all:
            raise ValueError("'all' needs at least one condition")
        if self.any is not None and not self.any:
            raise ValueError("'any' needs at least one condition")
        return self


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
    return lead_field_types().get(name)


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
            if known_hint is None:
                known = sorted(set(lead_field_types()) | set(CONTEXT_FIELD_KINDS) | set(extra_kinds or ()))
                known_hint = f"{', '.join(known)}, extra.NAME, engagement.NAME"
            problems.append(ConfigProblem(f"{path}.field", f"unknown field {cond.field!r}; known: {known_hint}"))
        elif cond.op not in OPS_BY_KIND[kind]:
            problems.append(ConfigProblem(f"{path}.op", f"op {cond.op!r} does not apply to {kind} field {cond.field!r}; allowed: {', '.join(sorted(OPS_BY_KIND[kind]))}"))
        elif kind == "number" and cond.op in ("gt", "gte", "lt", "lte", "between"):
            values = cond.value if isinstance(cond.value, list) else [cond.value]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                problems.append(ConfigProblem(f"{path}.value", f"op {cond.op!r} on number field {cond.field!r} needs numbers, got {cond.value!r}"))
            elif cond.op == "between" and values[0] > values[1]:
                problems.append(ConfigProblem(f"{path}.value", f"between needs [low, high] with low <= high, got {cond.value!r}"))
        elif kind == "bool" and cond.op in ("eq", "ne") and not isinstance(cond.value, bool):
            problems.append(ConfigProblem(f"{path}.value", f"bool field {cond.field!r} compares to true or false, got {cond.value!r}"))
    for key, subs in (("all", cond.all), ("any", cond.any)):
        for i, sub in enumerate(subs or ()):
            problems += check_condition(sub, f"{path}.{key}[{i}]", extra_kinds, kind_of=kind_of, known_hint=known_hint)
    if cond.not_ is not None:
        problems += check_condition(cond.not_, f"{path}.not", extra_kinds, kind_of=kind_of, known_hint=known_hint)
    return problems


def condition_fields(cond: Condition | None) -> tuple[str, ...]:
    """Every field a condition names, in order of appearance (duplicates removed)."""
    if cond is None:
        return ()
    if cond.field is not None:
        return (cond.field,)
    names: list[str] = []
    for sub in (*(cond.all or ()), *(cond.any or ()), *((cond.not_,) if cond.not_ is not None else ())):
        names += [n for n in condition_fields(sub) if n not in names]
    return tuple(names)


def _getter(name: str) -> Callable[[Lead, Mapping[str, Any]], Any]:
    if name in CONTEXT_FIELD_KINDS:
        return lambda lead, ctx: ctx.get(name)
    if name.startswith("extra."):
        key = name[len("extra."):]
        return lambda lead, ctx: lead.extra.get(key)
    if name.startswith("engagement."):
        key = name[len("engagement."):]
        return lambda lead, ctx: lead.engagement.get(key)
    if name in ("email_domain", "full_name"):
        return lambda lead, ctx: getattr(lead, name)
    return lambda lead, ctx: ctx[name] if name in ctx else getattr(lead, name)


def _norm(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, tuple | list) and not v)


def _field_test(op: str, expected: Any) -> Callable[[Any], bool]:
    """A test of one value, built once per condition so evaluation does no parsing."""
    if op == "present":
        return lambda v: not _is_blank(v)
    if op == "missing":
        return _is_blank
    if op in ("in", "not_in"):
        wanted = frozenset(_norm(x) for x in expected)
        nums = frozenset(n for n in (_num(x) for x in expected) if n is not None)

        def is_in(v: Any) -> bool:
            if isinstance(v, tuple | list):
                return any(_norm(x) in wanted for x in v)
            return _norm(v) in wanted or (_num(v) in nums if nums and not isinstance(v, str) else False)

        return is_in if op == "in" else (lambda v: not _is_blank(v) and not is_in(v))
    if op in ("contains", "not_contains"):
        needle = _norm(str(expected))

        def contains(v: Any) -> bool:
            if isinstance(v, tuple | list):
                return any(_norm(x) == needle for x in v)
            return isinstance(v, str) and needle in v.lower()

        return contains if op == "contains" else (lambda v: not contains(v))
    if op == "matches":
        rx = re.compile(str(expected), re.IGNORECASE)
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op in ("eq", "ne"):
        want = _norm(expected)
        want_num = _num(expected) if not isinstance(expected, bool | str) else None

        def eq(v: Any) -> bool:
            if want_num is not None and not isinstance(v, bool):
                n = _num(v)
                return n is not None and n == want_num
            if isinstance(expected, bool) and isinstance(v, str):
                # HubSpot returns every property value as a string ("true"/"false") [crm-behaviour: HubSpot property values are strings]
                return bool(_norm(v) == ("true" if expected else "false"))
            return bool(_norm(v) == want)

        return eq if op == "eq" else (lambda v: not eq(v))
    if op == "between":
        lo, hi = expected
        if isinstance(lo, str) or isinstance(hi, str):
            slo, shi = str(lo).lower(), str(hi).lower()
            return lambda v: v is not None and slo <= str(v).lower() <= shi and len(str(v)) == len(slo)
        flo, fhi = float(lo), float(hi)

        def between(v: Any) -> bool:
            n = _num(v)
            return n is not None and flo <= n <= fhi

        return between
    bound = float(expected)
    compare: Callable[[float], bool] = {
        "gt": lambda n: n > bound,
        "gte": lambda n: n >= bound,
        "lt": lambda n: n < bound,
        "lte": lambda n: n <= bound,
    }[op]

    def numeric(v: Any) -> bool:
        n = _num(v)
        return n is not None and compare(n)

    return numeric


def compile_condition(
    cond: Condition | None,
    getter: Callable[[str], Callable[[Any, Mapping[str, Any]], Any]] | None = None,
) -> Predicate:
    """Turn a validated condition into a fast predicate `(lead, ctx) -> bool`. None matches everything.

    `getter` replaces how a field name is read (e.g. from an Event instead of a Lead).
    """
    if cond is None:
        return lambda lead, ctx: True
    if cond.field is not None:
        test = _field_test(cond.op or "eq", cond.value)
        name = cond.field
        if getter is None and name in CONTEXT_FIELD_KINDS:
            return lambda lead, ctx: test(ctx.get(name))
        if getter is None and "." not in name and name not in ("email_domain", "full_name"):
            # the hot path of scoring: one closure per test instead of a getter call plus a test call
            return lambda lead, ctx: test(ctx[name] if name in ctx else getattr(lead, name))
        get = (getter or _getter)(name)
        return lambda lead, ctx: test(get(lead, ctx))
    if cond.all is not None:
        parts = tuple(compile_condition(c, getter) for c in cond.all)
        return lambda lead, ctx: all(p(lead, ctx) for p in parts)
    if cond.any is not None:
        parts = tuple(compile_condition(c, getter) for c in cond.any)
        return lambda lead, ctx: any(p(lead, ctx) for p in parts)
    inner = compile_condition(cond.not_, getter)
    return lambda lead, ctx: not inner(lead, ctx)


def condition_source(cond: Condition | None, value_of: Callable[[str], str], constants: dict[str, Any]) -> str:
    """A Python expression with the same truth value as `compile_condition(cond)`, for generated code.

    `value_of(field)` names the local holding the field's value; constants the expression needs
    (sets, regexes, the compiled test itself) are added to `constants` under fresh names. Each leaf
    is an inline test for the common value type, guarded by an exact type check, and calls the
    compiled `_field_test` for every other value — so any value gives the same answer as the predicate.
    """
    if cond is None:
        return "True"
    if cond.field is not None:
        return _leaf_source(cond.op or "eq", cond.value, value_of(cond.field), constants)
    if cond.all is not None:
        return "(" + " and ".join(condition_source(c, value_of, constants) for c in cond.all) + ")"
    if cond.any is not None:
        return "(" + " or ".join(condition_source(c, value_of, constants) for c in cond.any) + ")"
    return f"(not {condition_source(cond.not_, value_of, constants)})"


def _constant(constants: dict[str, Any], value: Any) -> str:
    name = f"_k{len(constants)}"
    constants[name] = value
    return name


def _leaf_source(op: str, expected: Any, v: str, constants: dict[str, Any]) -> str:
    test = _constant(constants, _field_test(op, expected))
    slow = f"{test}({v})"
    if op in ("in", "not_in") and all(isinstance(x, str) for x in expected):
        wanted = _constant(constants, frozenset(_norm(x) for x in expected))
        hit = f"({v}.strip().lower() in {wanted})"
        # A str is never compared as a number (is_in), and None is in no list of strings.
        fast = hit if op == "in" else f"(bool({v}.strip()) and not {hit})"
        return f"({fast} if type({v}) is str else False if {v} is None else {slow})"
    if op in ("contains", "not_contains"):
        needle = _constant(constants, _norm(str(expected)))
        norm = _constant(constants, _norm)
        contains = _constant(constants, _field_test("contains", expected))  # `slow` is already negated for not_contains
        hit = f"(({needle} in map({norm}, {v})) if type({v}) is tuple else ({needle} in {v}.lower()) if type({v}) is str else {contains}({v}))"
        return hit if op == "contains" else f"(not {hit})"
    if op == "matches":
        search = _constant(constants, re.compile(str(expected), re.IGNORECASE).search)
        return f"(({search}({v}) is not None) if type({v}) is str else {slow})"
    if op in ("eq", "ne") and isinstance(expected, bool):
        fast = f"({v} is {expected!r})" if op == "eq" else f"({v} is not {expected!r})"
        return f"({fast} if type({v}) is bool else {slow})"
    if op in ("eq", "ne") and isinstance(expected, str):
        want = _constant(constants, _norm(expected))
        fast = f"({v}.strip().lower() {'==' if op == 'eq' else '!='} {want})"
        # None (a missing field, an unmatched region) is never equal to a string (_norm leaves it None).
        missing = "False" if op == "eq" else "True"
        return f"({fast} if type({v}) is str else {missing} if {v} is None else {slow})"
    if op in ("gt", "gte", "lt", "lte") and isinstance(expected, int | float) and not isinstance(expected, bool):
        bound = _constant(constants, float(expected))
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"((float({v}) {sign} {bound}) if type({v}) is int or type({v}) is float else {slow})"
    if op == "between" and all(isinstance(x, int | float) and not isinstance(x, bool) for x in expected):
        lo, hi = _constant(constants, float(expected[0])), _constant(constants, float(expected[1]))
        return f"(({lo} <= float({v}) <= {hi}) if type({v}) is int or type({v}) is float else {slow})"
    if op == "missing":
        return f"(True if {v} is None else (not {v}.strip()) if type({v}) is str else {slow})"
    if op == "present":
        return f"(False if {v} is None else bool({v}.strip()) if type({v}) is str else {slow})"
    return slow


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
