"""SOQL rendering: every value placed in a query keeps its meaning (checked by the sandbox's SOQL reader, too)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.adapters.salesforce import soql
from connector.sandbox.salesforce import FieldDef, decode_string_literal, like_regex, parse_soql, tokenize


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("o'neil.example", "'o\\'neil.example'"),
        ("back\\slash", "'back\\\\slash'"),
        ('say "hi"', "'say \\\"hi\\\"'"),
        ("line\nbreak\ttab\r", "'line\\nbreak\\ttab\\r'"),
        ("' OR Id != null OR Name = '", "'\\' OR Id != null OR Name = \\''"),
        ("100%_done", "'100%_done'"),  # wildcards mean nothing outside LIKE
        ("", "''"),
    ],
)
def test_quote_escapes_quotes_backslashes_and_controls(value: str, literal: str) -> None:
    assert soql.quote(value) == literal


def test_like_literal_escapes_wildcards_but_keeps_the_outer_ones() -> None:
    assert soql.like_literal("100%_o'neil", prefix="%", suffix="%") == "'%100\\%\\_o\\'neil%'"
    with pytest.raises(ValueError):
        soql.like_literal("x", prefix="' OR '")


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "null"), (True, "true"), (False, "false"), (42, "42"), (1.5, "1.5"), (1e20, "100000000000000000000"),
        (Decimal("2.50"), "2.50"), (date(2024, 1, 2), "2024-01-02"),
        (datetime(2024, 1, 1, tzinfo=UTC), "2024-01-01T00:00:00Z"),
        (datetime(2024, 1, 1, 2, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T00:00:00.123Z"),
        ("x", "'x'"),
    ],
)
def test_literals_by_type(value: object, literal: str) -> None:
    assert soql.literal(value) == literal


def test_literal_refuses_what_has_no_soql_form() -> None:
    with pytest.raises(ValueError):
        soql.datetime_literal(datetime(2024, 1, 1))  # naive: which time zone?
    with pytest.raises(ValueError):
        soql.literal(float("nan"))
    with pytest.raises(TypeError):
        soql.literal(object())
    with pytest.raises(ValueError):
        soql.in_list([])


@pytest.mark.parametrize("name", ["Id", "Connector_Score__c", "Owner.Name"])
def test_identifiers_pass(name: str) -> None:
    assert soql.identifier(name) == name


@pytest.mark.parametrize("name", ["", "Id, Name", "Id FROM User --", "1Field", "Name'"])
def test_identifiers_cannot_be_escaped_only_refused(name: str) -> None:
    with pytest.raises(ValueError):
        soql.identifier(name)


def test_select_assembles_checked_parts() -> None:
    text = soql.select(["Id", "Email"], "Lead", f"Email = {soql.quote('a@o' + chr(39) + 'neil.example')}", ["SystemModstamp", "Id DESC"], 10)
    assert text == "SELECT Id, Email FROM Lead WHERE Email = 'a@o\\'neil.example' ORDER BY SystemModstamp, Id DESC LIMIT 10"
    with pytest.raises(ValueError):
        soql.select(["Id"], "Lead", order_by=["Id; DROP"])
    with pytest.raises(ValueError):
        soql.select(["Id"], "Lead", order_by=["Id SIDEWAYS"])


@given(st.text())
def test_quoted_text_reads_back_as_one_literal_with_the_same_value(value: str) -> None:
    literal = soql.quote(value)
    assert tokenize(literal) == [("str", literal)]
    assert decode_string_literal(literal) == value


@given(st.text(), st.text(min_size=1))
def test_like_literal_matches_the_value_itself_only(value: str, other: str) -> None:
    pattern = like_regex(soql.like_literal(value))
    assert pattern.fullmatch(value)
    if other.casefold() != value.casefold():
        assert not pattern.fullmatch(other)  # no wildcard leaked: only the value itself (any case) matches


@given(st.text())
def test_an_equality_filter_selects_exactly_the_matching_row(value: str) -> None:
    schema = {"Lead": {"Id": FieldDef("Id", "id"), "Email": FieldDef("Email", "email")}}
    parsed = parse_soql(f"SELECT Id FROM Lead WHERE Email = {soql.quote(value)} OR Email IN {soql.in_list([value, 'x'])}", schema)
    assert parsed.where is not None
    assert parsed.where({"Id": "1", "Email": value})
    assert not parsed.where({"Id": "2", "Email": value + "'"})
