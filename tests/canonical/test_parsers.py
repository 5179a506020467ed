"""Typed parsers of CRM values: every parse type, and bad values raise (the reader counts them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.canonical import FieldSpec
from connector.canonical.parsers import parse_band, parse_datetime, parse_multi, parse_number, value_parser
from connector.canonical.settings import check_field_specs


@pytest.mark.parametrize(("raw", "expected"), [
    ("10000000", 10_000_000), ("$10M", 10_000_000), ("10 000 000", 10_000_000), ("10,000,000", 10_000_000),
    ("10\u00a0000\u00a0000", 10_000_000), ("€5.5m", 5_500_000), ("250k", 250_000), ("1.2 bn", 1_200_000_000),
    ("USD 3,500,000", 3_500_000), ("1.234.567", 1_234_567), ("2,5", 2.5), ("1200000.50", 1_200_000.5), (42, 42), (2.5, 2.5),
])
def test_numbers_and_revenue_text(raw: Any, expected: float) -> None:
    assert parse_number(raw) == expected


@pytest.mark.parametrize("raw", ["lots", "n/a", "10 apples", "$", True, "1-5"])
def test_bad_numbers_raise(raw: Any) -> None:
    with pytest.raises(ValueError):
        parse_number(raw)


@pytest.mark.parametrize(("raw", "expected"), [
    ("100-500", (100, "100-500")), ("1000+", (1000, "1000+")), ("1-5", (1, "1-5")), ("10,000+", (10_000, "10,000+")),
    ("5 - 25", (5, "5 - 25")), ("500–1000", (500, "500–1000")), ("250", (250, None)), (250, (250, None)),
])
def test_employee_bands(raw: Any, expected: tuple[int, str | None]) -> None:
    assert parse_band(raw) == expected


@pytest.mark.parametrize("raw", ["lots", "500-100", "about 50", "-5"])
def test_bad_bands_raise(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_band(raw)


def test_boolean_with_configured_true_and_false_values() -> None:
    parse = value_parser(FieldSpec(property="p", parse="boolean", true_values=["Yes", "Decision Maker"], false_values=["No"]))
    assert [parse(v) for v in ("yes", " DECISION MAKER ", "no", True, False)] == [True, True, False, True, False]
    with pytest.raises(ValueError):
        parse("maybe")  # neither list: unparsed, never a silent false
    with pytest.raises(ValueError):
        parse("true")  # the configured lists replace the defaults


def test_value_map_matches_case_insensitively_and_refuses_unknown_values() -> None:
    parse = value_parser(FieldSpec(property="p", parse="value_map", values={"50k_250k": True, "Under_50K": False}))
    assert (parse("50K_250K"), parse("under_50k")) == (True, False)
    with pytest.raises(ValueError):
        parse("over_1m")
    seniority = value_parser(FieldSpec(property="p", parse="value_map", values={"VP": "vp", "C-Level": "c_level"}))
    assert seniority("c-level") == "c_level"


def test_multi_select_is_split_stripped_case_folded_and_deduplicated() -> None:
    assert parse_multi("Analytics; CRM;;analytics") == ("analytics", "crm")
    assert parse_multi(["Payments", "CRM"]) == ("payments", "crm")


@pytest.mark.parametrize(("raw", "expected"), [
    ("1717000000000", datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)), ("2024-05-01T10:20:30Z", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)),
    ("2024-05-01T12:20:30.000+0200", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)), ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
])
def test_datetimes_epoch_ms_and_iso(raw: str, expected: datetime) -> None:
    assert parse_datetime(raw) == expected
    assert value_parser(FieldSpec(property="p", parse="date"))(raw) == expected.replace(hour=0, minute=0, second=0)


def test_mapping_checks_name_the_key_and_the_misfit() -> None:
    specs = {
        "budget": FieldSpec(property="b", parse="value_map", values={"yes": "Y"}),
        "employees": FieldSpec(property="e", parse="multi"),
        "favourite_colour": FieldSpec(property="c"),
        "seniority": FieldSpec(property="s", parse="value_map", values={"VP": "vp"}),
    }
    assert check_field_specs(specs) == [
        ("budget.values.yes", "bool field 'budget' cannot hold 'Y'"),
        ("employees.parse", "parse 'multi' does not fit number field 'employees'; use one of: number, number_band, value_map"),
        ("favourite_colour", check_field_specs({"favourite_colour": FieldSpec(property="c")})[0][1]),
    ]
    with pytest.raises(ValueError, match="needs values"):
        FieldSpec(property="b", parse="value_map")
