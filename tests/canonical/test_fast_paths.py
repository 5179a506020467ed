"""The shortcuts normalize takes per record read exactly what the general paths read: folding ASCII names, plain-digit
numbers, repeated values through the reader's memo, and keyword names that Lead(**values) matches by identity."""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Any

import pytest

from connector.canonical import Canonical, FieldReader, FieldSpec, ParseStats
from connector.canonical.countries import country_index, fold, subdivision_index
from connector.canonical.parsers import parse_number

_PUNCT = re.compile(r"[^\w]+")


def reference_fold(text: str) -> str:
    """fold as written before its shortcuts: every name decomposed and its combining marks dropped one by one."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _PUNCT.sub(" ", "".join(ch for ch in decomposed if not unicodedata.combining(ch))).strip()


@pytest.mark.parametrize("text", [
    "United States", "  U.S.A. ", "Côte d'Ivoire", "DEUTSCHLAND", "Österreich", "İstanbul", "Straße", "ǅ", "ﬃ", "①",
    "Ελλάδα", "ΣΊΣΥΦΟΣ", "Россия", "日本", "대한민국", "e\u0301", "\u0345", "\u00a0Kraków\u202f", "", "--", "Ⅻ", "K",
])
def test_fold_shortcuts_equal_the_full_decomposition(text: str) -> None:
    assert fold(text) == reference_fold(text)


def test_indexes_hold_the_names_the_full_fold_gives() -> None:
    index = country_index()
    assert (index["deutschland"], index["cote d ivoire"], index["us"], index["usa"]) == ("DE", "CI", "US", "US")
    assert "" not in index
    by_country, by_name = subdivision_index()
    assert by_country[("DE", fold("Bayern"))] == "BY" and by_country[("US", "ca")] == "CA"
    assert "US-CA" in by_name[fold("California")]


@pytest.mark.parametrize(("raw", "expected"), [("0", 0.0), ("007", 7.0), ("1502850000", 1_502_850_000.0), ("١٢", 12.0)])
def test_plain_digit_numbers(raw: str, expected: float) -> None:
    assert parse_number(raw) == expected


@pytest.mark.parametrize("raw", ["²", "1e3", "nan", "inf", "1_000x"])
def test_digit_like_text_that_is_no_number_still_raises(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_number(raw)


def reader(**specs: FieldSpec) -> FieldReader:
    return FieldReader(specs, Canonical(), ParseStats())


def test_values_keys_are_the_interned_names_lead_keywords_match() -> None:
    name = "".join(["bud", "get"])  # a name read from config is a new string, not the interned identifier
    values = reader(**{name: FieldSpec(property="b", parse="boolean")}).read({"b": "yes"}.get)
    assert values["budget"] is True
    assert all(key is sys.intern(key) for key in values)


def test_remembered_parses_are_counted_every_time_and_read_alike() -> None:
    r = reader(employees=FieldSpec(property="n", parse="number_band"), budget=FieldSpec(property="b", parse="boolean"))
    records: list[dict[str, Any]] = [{"n": "100-500", "b": "maybe"}, {"n": "100-500", "b": "maybe"}, {"n": 250.0, "b": True}]
    out = [r.read(record.get) for record in records]
    assert out[0] == out[1] and (out[0]["employees"], out[0]["employees_band"], out[0]["budget"]) == (100, "100-500", None)
    assert (out[2]["employees"], out[2]["employees_band"], out[2]["budget"], out[2]["raw"]) == (250, None, True, {"employees": "250.0", "budget": "true"})
    employees, budget = r.stats.tallies["employees"], r.stats.tallies["budget"]
    assert (employees.seen, employees.parsed, budget.parsed, budget.unparsed) == (3, 3, 1, {"maybe": 2})


@pytest.mark.parametrize(("raw", "empty"), [(None, True), ("", True), ("  ", True), ([], True), ((), True), ([""], False), (0, False), (False, False)])
def test_blank_values_by_shape(raw: Any, empty: bool) -> None:
    r = reader(city=FieldSpec(property="c"))
    values = r.read({"c": raw}.get)
    assert (r.stats.tallies["city"].empty == 1) is empty
    assert ("city" in values["raw"]) is not empty
