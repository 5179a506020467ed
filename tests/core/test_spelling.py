"""Near misses: the "did you mean" of unknown config names."""

from __future__ import annotations

import pytest

from connector.core.spelling import closest, unknown_name


@pytest.mark.parametrize(
    ("name", "known", "expected"),
    [
        ("contry", ["city", "country", "company_name"], "country"),
        ("enterprize", ["smb", "enterprise", "emea"], "enterprise"),
        ("acess_token", ["access_token", "access_token_file", "base_url"], "access_token"),
        ("Enterprize", ["enterprise"], "enterprise"),
        ("owner", ["employees", "industry"], None),
        ("x", [], None),
    ],
)
def test_closest(name: str, known: list[str], expected: str | None) -> None:
    assert closest(name, known) == expected


@pytest.mark.parametrize(
    ("known", "otherwise", "message"),
    [
        (["smb", "enterprise"], None, "unknown pool 'enterprize'; did you mean 'enterprise'?"),
        (["smb", "emea"], None, "unknown pool 'enterprize'; known: smb, emea"),
        ([], None, "unknown pool 'enterprize'; none are defined"),
        ([f"p{i}" for i in range(10)], None, "unknown pool 'enterprize'; known: p0, p1, p2, p3, p4, p5, p6, p7 and 2 more"),
        (["smb"], "define it under routing.pools", "unknown pool 'enterprize'; define it under routing.pools"),
    ],
)
def test_unknown_name_reads_as_one_short_sentence(known: list[str], otherwise: str | None, message: str) -> None:
    assert unknown_name("pool", "enterprize", known, otherwise=otherwise) == message
