"""The config check's shortcut for rule values that are already country codes gives the answer the full look-up
gives, for every ISO code, and leaves the full look-up to a configured alias that takes a code's spelling."""

from __future__ import annotations

import pycountry
import pytest

from connector.canonical import checks
from connector.canonical.reader import Canonical
from connector.canonical.settings import CanonicalSettings


def _full_lookup_accepts(value: str, canonical: Canonical) -> bool:
    code = canonical.country(value)
    return code is not None and code == value.strip().upper()


@pytest.mark.parametrize("spell", [str.upper, str.lower, lambda code: f" {code} "])
def test_every_iso_code_is_accepted_as_the_full_look_up_accepts_it(spell: object) -> None:
    canonical = Canonical()
    for country in pycountry.countries:
        value = spell(country.alpha_2)  # type: ignore[operator]
        assert checks._is_country_code(value, canonical)
        assert _full_lookup_accepts(value, canonical)


@pytest.mark.parametrize("value", ["UK", "USA", "U.", "ıt", "Narnia", "", "XX"])
def test_values_that_are_not_codes_are_left_to_the_full_look_up(value: str) -> None:
    assert not checks._is_country_code(value, Canonical())


def test_an_alias_taking_a_codes_spelling_is_left_to_the_full_look_up() -> None:
    canonical = Canonical(CanonicalSettings(country_aliases={"us": "GB"}))
    assert not checks._is_country_code("US", canonical)
    assert checks._problem("country", "US", canonical) == (
        "country 'US' is not an ISO 3166-1 alpha-2 code: leads hold codes such as 'US'; write 'GB'"
    )
