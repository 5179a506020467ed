"""Conditions: validation of their shape, checks of fields and op/type fit, and compiled predicates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from connector.engine.conditions import (
    Condition,
    check_condition,
    compile_condition,
    condition_fields,
    describe,
    field_kind,
)
from connector.core.models import Event, Lead

LEAD = Lead(
    crm="hubspot", object_type="contacts", id="1", email="Ana@Acme.Example", title="VP of Sales", country="US",
    industry="SOFTWARE", employees=250, annual_revenue=12_500_000.0, postal_code="94105",
    product_interest=("analytics", "Payments"), budget=True, need=None,
    engagement={"pricing_page_views": 4.0}, extra={"plan": "pro", "trial": "true", "seats": "40"},
)


def cond(**kw: Any) -> Condition:
    return Condition.model_validate(kw)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"field": "country", "op": "eq", "value": "us"}, True),
        ({"field": "country", "op": "eq", "value": "CA"}, False),
        ({"field": "country", "op": "ne", "value": "CA"}, True),
        ({"field": "country", "op": "in", "value": ["CA", " US "]}, True),
        ({"field": "country", "op": "not_in", "value": ["CA", "GB"]}, True),
        ({"field": "state", "op": "not_in", "value": ["CA"]}, False),  # a missing value is in no list
        ({"field": "title", "op": "contains", "value": "sales"}, True),
        ({"field": "title", "op": "not_contains", "value": "sales"}, False),
        ({"field": "title", "op": "matches", "value": r"\bvp\b"}, True),
        ({"field": "title", "op": "matches", "value": r"^chief"}, False),
        ({"field": "employees", "op": "gt", "value": 249}, True),
        ({"field": "employees", "op": "gte", "value": 250}, True),
        ({"field": "employees", "op": "lt", "value": 250}, False),
        ({"field": "employees", "op": "lte", "value": 250}, True),
        ({"field": "employees", "op": "between", "value": [250, 999]}, True),
        ({"field": "employees", "op": "between", "value": [251, 999]}, False),
        ({"field": "employees", "op": "in", "value": [100, 250]}, True),
        ({"field": "employees", "op": "eq", "value": 250}, True),
        ({"field": "annual_revenue", "op": "gte", "value": 10_000_000}, True),
        ({"field": "postal_code", "op": "between", "value": ["94000", "94999"]}, True),
        ({"field": "postal_code", "op": "between", "value": ["10000", "19999"]}, False),
        ({"field": "product_interest", "op": "contains", "value": "payments"}, True),
        ({"field": "product_interest", "op": "contains", "value": "crm"}, False),
        ({"field": "product_interest", "op": "in", "value": ["crm", "analytics"]}, True),
        ({"field": "budget", "op": "eq", "value": True}, True),
        ({"field": "need", "op": "missing"}, True),
        ({"field": "need", "op": "present"}, False),
        ({"field": "company_name", "op": "missing"}, True),
        ({"field": "email_domain", "op": "eq", "value": "acme.example"}, True),
        ({"field": "extra.plan", "op": "eq", "value": "PRO"}, True),
        ({"field": "extra.trial", "op": "eq", "value": True}, True),  # CRM strings "true"/"false"
        ({"field": "extra.seats", "op": "gte", "value": 40}, True),
        ({"field": "extra.missing", "op": "missing"}, True),
        ({"field": "engagement.pricing_page_views", "op": "gte", "value": 3}, True),
        ({"field": "engagement.email_opens", "op": "gt", "value": 0}, False),
        ({"all": [{"field": "country", "op": "eq", "value": "US"}, {"field": "employees", "op": "gt", "value": 100}]}, True),
        ({"all": [{"field": "country", "op": "eq", "value": "US"}, {"field": "employees", "op": "gt", "value": 1000}]}, False),
        ({"any": [{"field": "country", "op": "eq", "value": "GB"}, {"field": "employees", "op": "gt", "value": 100}]}, True),
        ({"not": {"field": "country", "op": "eq", "value": "US"}}, False),
    ],
)
def test_compiled_predicate(data: dict[str, Any], expected: bool) -> None:
    assert compile_condition(cond(**data))(LEAD, {}) is expected


def test_context_fields_come_from_context() -> None:
    pred = compile_condition(cond(all=[{"field": "region", "op": "eq", "value": "NA"}, {"field": "score", "op": "gte", "value": 50}]))
    assert pred(LEAD, {"region": "NA", "score": 50})
    assert not pred(LEAD, {"region": "NA", "score": 49.9})
    assert not pred(LEAD, {})


def test_none_matches_everything() -> None:
    assert compile_condition(None)(LEAD, {}) is True
    assert describe(None) == "always"


def test_custom_getter_reads_other_objects() -> None:
    event = Event("ana@acme.example", "Page Viewed", datetime(2025, 1, 1, tzinfo=UTC), {"path": "/pricing/teams"}, "page")

    def getter(name: str) -> Any:
        key = name.removeprefix("properties.")
        return lambda ev, ctx: ev.properties.get(key) if name.startswith("properties.") else getattr(ev, name)

    pred = compile_condition(cond(all=[{"field": "name", "op": "eq", "value": "page viewed"}, {"field": "properties.path", "op": "matches", "value": "^/pricing"}]), getter)
    assert pred(event, {})  # type: ignore[arg-type]
    assert not compile_condition(cond(**{"not": {"field": "properties.path", "op": "contains", "value": "pricing"}}), getter)(event, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"field": "country"}, "needs an op"),
        ({"field": "country", "op": "present", "value": "US"}, "takes no value"),
        ({"field": "country", "op": "eq"}, "needs a value"),
        ({"field": "country", "op": "in", "value": "US"}, "needs a list"),
        ({"field": "employees", "op": "between", "value": [1]}, "two-item list"),
        ({"field": "title", "op": "matches", "value": "(unclosed"}, "not a valid regular expression"),
        ({"all": []}, "at least one"),
        ({"any": []}, "at least one"),
        ({"field": "country", "op": "eq", "value": "US", "all": [{"field": "x", "op": "present"}]}, "exactly one of"),
        ({}, "exactly one of"),
        ({"field": "country", "op": "like", "value": "US"}, "Input should be"),
        ({"field": "country", "op": "eq", "value": "US", "colour": "red"}, "Extra inputs"),
    ],
)
def test_shape_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate(data)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"field": "contry", "op": "eq", "value": "US"}, "c.field", "unknown field 'contry'"),
        ({"field": "employees", "op": "contains", "value": "5"}, "c.op", "does not apply to number"),
        ({"field": "created_at", "op": "gt", "value": 5}, "c.op", "does not apply to datetime"),
        ({"field": "product_interest", "op": "eq", "value": "crm"}, "c.op", "does not apply to list"),
        ({"field": "employees", "op": "gt", "value": "many"}, "c.value", "needs numbers"),
        ({"field": "employees", "op": "between", "value": [10, 5]}, "c.value", "low <= high"),
        ({"field": "budget", "op": "eq", "value": "yes"}, "c.value", "true or false"),
        ({"all": [{"field": "country", "op": "eq", "value": "US"}, {"field": "bogus", "op": "present"}]}, "c.all[1].field", "unknown field"),
        ({"any": [{"not": {"field": "title", "op": "gt", "value": 3}}]}, "c.any[0].not.op", "does not apply to str"),
    ],
)
def test_check_condition_reports_key_paths(data: dict[str, Any], path: str, message: str) -> None:
    problems = check_condition(cond(**data), "c")
    assert [p.path for p in problems] == [path]
    assert message in problems[0].message


@pytest.mark.parametrize(
    "data",
    [
        {"field": "country", "op": "in", "value": ["US"]},
        {"field": "extra.anything", "op": "gt", "value": 3},
        {"field": "engagement.page_views", "op": "between", "value": [1, 5]},
        {"field": "is_free_mail", "op": "eq", "value": False},
        {"field": "bant", "op": "eq", "value": "hot"},
    ],
)
def test_check_condition_accepts_valid(data: dict[str, Any]) -> None:
    assert check_condition(cond(**data), "c") == []


def test_check_condition_with_custom_universe() -> None:
    def kind_of(name: str) -> str | None:
        return "str" if name == "name" else None

    problems = check_condition(cond(field="country", op="eq", value="US"), "w", kind_of=kind_of, known_hint="name")
    assert [(p.path, p.message) for p in problems] == [("w.field", "unknown field 'country'; known: name")]
    assert check_condition(cond(field="name", op="matches", value="^Page"), "w", kind_of=kind_of) == []


def test_extra_kinds_override() -> None:
    assert field_kind("deal_stage", {"deal_stage": "str"}) == "str"
    assert field_kind("nope") is None
    assert field_kind("engagement.x") == "number"


def test_condition_fields_and_describe() -> None:
    c = cond(all=[{"field": "country", "op": "eq", "value": "US"}, {"any": [{"field": "title", "op": "present"}, {"not": {"field": "country", "op": "eq", "value": "CA"}}]}])
    assert condition_fields(c) == ("country", "title")
    assert describe(c) == "(country eq 'US' and (title present or not country eq 'CA'))"
