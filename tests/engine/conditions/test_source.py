"""Generated condition source (`condition_source`, `compile_condition`) gives the oracle's answer, for values of any type and any tree."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.core.models import Lead
from connector.engine.conditions import Condition, compile_condition, condition_source
from tests.engine.conditions import oracle

ODD_VALUES: list[Any] = [
    None, "", "  ", "US", " us ", "Gb", "SOFTWARE", "software ", "10", "1e3", "abc", "CTO", "Chief Executive Officer",
    "vp", "VP of Sales", "student", "intern", "payments", "true", "false", "hot", "Warm", 0, 1, 7, 50, 999, 1000, 10**6,
    -3, 0.5, 49.99, 1e7, float("nan"), float("inf"), True, False, ("payments",), ("Payments ", "crm"), (), ["crm"], [],
    ("x", 3),
]


def _expected_values() -> st.SearchStrategy[Any]:
    scalar = st.sampled_from(["US", "gb", " Payments", "hot", "10", "abc", "true", 3, 10.5, 0, -1, True, False])
    return st.one_of(scalar, st.lists(scalar, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(["eq", "ne", "in", "not_in", "contains", "not_contains", "matches", "gt", "gte", "lt", "lte", "between", "present", "missing"]),
    expected=_expected_values(),
    values=st.lists(st.sampled_from(ODD_VALUES), min_size=1, max_size=8),
)
def test_condition_source_agrees_with_the_compiled_predicate(op: str, expected: Any, values: list[Any]) -> None:
    if op in ("present", "missing"):
        expected = None
    elif op == "between":
        expected = sorted(expected[:2] * 2)[:2] if isinstance(expected, list) and all(isinstance(x, int | float) for x in expected) else [1, 100]
    elif op == "matches":
        expected = str(expected[0] if isinstance(expected, list) else expected)
    elif op in ("gt", "gte", "lt", "lte"):
        expected = 5 if isinstance(expected, list | str | bool) else expected
    try:
        leaf = Condition.model_validate({"field": "extra.x", "op": op, "value": expected})
    except ValueError:
        return  # not a valid condition: config checks reject it before anything compiles it
    for cond in (leaf, Condition.model_validate({"not": {"field": "extra.x", "op": op, "value": expected}})):
        constants: dict[str, Any] = {}
        code = compile(f"lambda _v0: {condition_source(cond, lambda name: '_v0', constants)}", "<test>", "eval")
        fast = eval(code, constants)  # noqa: S307 - the expression under test
        pred, reference = compile_condition(cond), oracle.predicate(cond)
        for value in values:
            lead = Lead(crm="hubspot", object_type="contacts", id="1", extra={"x": value})
            assert bool(fast(value)) == bool(pred(lead, {})) == reference(lead, {}), (cond, value)


LEAVES = [
    {"field": "country", "op": "in", "value": ["US", "ca"]},
    {"field": "employees", "op": "gte", "value": 50},
    {"field": "title", "op": "matches", "value": "chief|vp"},
    {"field": "extra.x", "op": "present"},
    {"field": "region", "op": "eq", "value": "NA"},
    {"field": "score", "op": "between", "value": [10, 60]},
    {"field": "is_free_mail", "op": "eq", "value": False},
    {"field": "product_interest", "op": "contains", "value": "payments"},
]


def _trees() -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        st.sampled_from(LEAVES),
        lambda sub: st.one_of(
            st.lists(sub, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(sub, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
            sub.map(lambda x: {"not": x}),
        ),
        max_leaves=6,
    )


@settings(max_examples=200, deadline=None)
@given(
    tree=_trees(),
    country=st.sampled_from([None, "US", " ca", "DE", 3]),
    employees=st.sampled_from([None, 10, 50, 5000]),
    title=st.sampled_from([None, "", "VP Sales", "Chief of Staff", "intern"]),
    x=st.sampled_from(ODD_VALUES),
    ctx=st.fixed_dictionaries({"region": st.sampled_from([None, "NA", "na ", "EMEA"]), "score": st.sampled_from([None, 5, 10, 59.9, 61]),
                               "is_free_mail": st.sampled_from([True, False, "false"])}),
)
def test_compiled_trees_agree_with_the_oracle(
    tree: dict[str, Any], country: Any, employees: Any, title: Any, x: Any, ctx: dict[str, Any],
) -> None:
    cond = Condition.model_validate(tree)
    lead = Lead(crm="hubspot", object_type="contacts", id="1", country=country, employees=employees, title=title,
                product_interest=("Payments ",) if employees == 50 else (), extra={"x": x})
    assert compile_condition(cond)(lead, ctx) is oracle.predicate(cond)(lead, ctx)
