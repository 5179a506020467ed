"""Conditions as Python source for generated code: inline tests for common value types, `field_test` for the rest."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from connector.engine.conditions.ops import field_test, norm
from connector.engine.conditions.model import Condition


def condition_source(cond: Condition | None, value_of: Callable[[str], str], constants: dict[str, Any]) -> str:
    """A Python expression with the same truth value as `compile_condition(cond)`, for generated code.

    `value_of(field)` names the local holding the field's value; constants the expression needs
    (sets, regexes, the compiled test itself) are added to `constants` under fresh names. Each leaf
    is an inline test for the common value type, guarded by an exact type check, and calls the
    compiled `field_test` for every other value — so any value gives the same answer as the predicate.
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
    test = _constant(constants, field_test(op, expected))
    slow = f"{test}({v})"
    if op in ("in", "not_in") and all(isinstance(x, str) for x in expected):
        wanted = _constant(constants, frozenset(norm(x) for x in expected))
        hit = f"({v}.strip().lower() in {wanted})"
        # A str is never compared as a number (is_in), and None is in no list of strings.
        fast = hit if op == "in" else f"(bool({v}.strip()) and not {hit})"
        return f"({fast} if type({v}) is str else False if {v} is None else {slow})"
    if op in ("contains", "not_contains"):
        needle = _constant(constants, norm(str(expected)))
        fold = _constant(constants, norm)
        contains = _constant(constants, field_test("contains", expected))  # `slow` is already negated for not_contains
        hit = f"(({needle} in map({fold}, {v})) if type({v}) is tuple else ({needle} in {v}.lower()) if type({v}) is str else {contains}({v}))"
        return hit if op == "contains" else f"(not {hit})"
    if op == "matches":
        search = _constant(constants, re.compile(str(expected), re.IGNORECASE).search)
        return f"(({search}({v}) is not None) if type({v}) is str else {slow})"
    if op in ("eq", "ne") and isinstance(expected, bool):
        fast = f"({v} is {expected!r})" if op == "eq" else f"({v} is not {expected!r})"
        return f"({fast} if type({v}) is bool else {slow})"
    if op in ("eq", "ne") and isinstance(expected, str):
        want = _constant(constants, norm(expected))
        fast = f"({v}.strip().lower() {'==' if op == 'eq' else '!='} {want})"
        # None (a missing field, an unmatched region) is never equal to a string (norm leaves it None).
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
