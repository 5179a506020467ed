"""What each op means on one value: `field_test(op, expected)`, the single definition every condition form uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def norm(v: Any) -> Any:
    """A value as conditions compare it: strings stripped and case-folded."""
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


def field_test(op: str, expected: Any) -> Callable[[Any], bool]:
    """A test of one value, built once per condition so evaluation does no parsing: what each op means."""
    if op == "present":
        return lambda v: not _is_blank(v)
    if op == "missing":
        return _is_blank
    if op in ("in", "not_in"):
        return _membership(op, expected)
    if op in ("contains", "not_contains"):
        return _containment(op, expected)
    if op == "matches":
        rx = re.compile(str(expected), re.IGNORECASE)
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op in ("eq", "ne"):
        return _equality(op, expected)
    if op == "between":
        return _between(expected)
    return _comparison(op, expected)


def _membership(op: str, expected: Any) -> Callable[[Any], bool]:
    wanted = frozenset(norm(x) for x in expected)
    nums = frozenset(n for n in (_num(x) for x in expected) if n is not None)

    def is_in(v: Any) -> bool:
        if isinstance(v, tuple | list):
            return any(norm(x) in wanted for x in v)
        return norm(v) in wanted or (_num(v) in nums if nums and not isinstance(v, str) else False)

    return is_in if op == "in" else (lambda v: not _is_blank(v) and not is_in(v))


def _containment(op: str, expected: Any) -> Callable[[Any], bool]:
    needle = norm(str(expected))

    def contains(v: Any) -> bool:
        if isinstance(v, tuple | list):
            return any(norm(x) == needle for x in v)
        return isinstance(v, str) and needle in v.lower()

    return contains if op == "contains" else (lambda v: not contains(v))


def _equality(op: str, expected: Any) -> Callable[[Any], bool]:
    want = norm(expected)
    want_num = _num(expected) if not isinstance(expected, bool | str) else None

    def eq(v: Any) -> bool:
        if want_num is not None and not isinstance(v, bool):
            n = _num(v)
            return n is not None and n == want_num
        if isinstance(expected, bool) and isinstance(v, str):
            # HubSpot returns every property value as a string ("true"/"false") [crm-behaviour: HubSpot property values are strings]
            return bool(norm(v) == ("true" if expected else "false"))
        return bool(norm(v) == want)

    return eq if op == "eq" else (lambda v: not eq(v))


def _between(expected: Any) -> Callable[[Any], bool]:
    lo, hi = expected
    if isinstance(lo, str) or isinstance(hi, str):
        slo, shi = str(lo).lower(), str(hi).lower()
        return lambda v: v is not None and slo <= str(v).lower() <= shi and len(str(v)) == len(slo)
    flo, fhi = float(lo), float(hi)

    def between(v: Any) -> bool:
        n = _num(v)
        return n is not None and flo <= n <= fhi

    return between


def _comparison(op: str, expected: Any) -> Callable[[Any], bool]:
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
