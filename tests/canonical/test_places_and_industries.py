"""Canonical countries, states, industries and phone countries: names, native names, aliases, codes; typos stay unparsed."""

from __future__ import annotations

import pytest

from connector.canonical import Canonical, CanonicalSettings
from connector.canonical.domains import disposable_domains, shipped_free_mail_domains
from connector.canonical.industries import HUBSPOT_INDUSTRIES, SALESFORCE_INDUSTRIES, TAXONOMY
from connector.canonical.phones import phone_country

CANON = Canonical(CanonicalSettings(country_aliases={"Untied States": "US"}, state_aliases={"Calif.": "US-CA"},
                                    industry_map={"Widgets": "manufacturing", "COMPUTER_GAMES": "entertainment"}))


@pytest.mark.parametrize(("raw", "code"), [
    # names, official and common names
    ("United States", "US"), ("united states of america", "US"), ("Germany", "DE"), ("Federal Republic of Germany", "DE"),
    ("South Korea", "KR"), ("Viet Nam", "VN"), ("Vietnam", "VN"), ("Côte d'Ivoire", "CI"), ("Türkiye", "TR"),
    # native names and other languages (pycountry's translations), accents optional
    ("Deutschland", "DE"), ("Österreich", "AT"), ("Osterreich", "AT"), ("España", "ES"), ("Sverige", "SE"), ("Suomi", "FI"),
    ("Brasil", "BR"), ("México", "MX"), ("Schweiz", "CH"), ("Italia", "IT"), ("Nederland", "NL"), ("日本", "JP"),
    # aliases pycountry lacks
    ("UK", "GB"), ("U.K.", "GB"), ("England", "GB"), ("USA", "US"), ("U.S.A.", "US"), ("Holland", "NL"), ("Russia", "RU"),
    ("Ivory Coast", "CI"), ("UAE", "AE"),
    # codes, any case and padding
    ("us", "US"), (" DE ", "DE"), ("GBR", "GB"), ("AUS", "AU"),
    # the config's own additions
    ("Untied States", "US"),
])
def test_countries(raw: str, code: str) -> None:
    assert CANON.country(raw) == code


@pytest.mark.parametrize("raw", ["Untited Kingdom", "Germny", "N/A", "-", "Earth", "Unknown"])
def test_typos_and_junk_stay_unparsed(raw: str) -> None:
    assert CANON.country(raw) is None


@pytest.mark.parametrize(("raw", "country", "code"), [
    ("California", "US", "CA"), ("CA", "US", "CA"), ("ca", "US", "CA"), ("US-CA", "US", "CA"), ("US-CA", None, "CA"),
    ("California", None, "CA"), ("New York", "US", "NY"), ("Ontario", "CA", "ON"), ("Québec", "CA", "QC"),
    ("Quebec", "CA", "QC"), ("NSW", "AU", "NSW"), ("Bayern", "DE", "BY"), ("Uusimaa", "FI", "18"), ("Calif.", "US", "CA"),
])
def test_states(raw: str, country: str | None, code: str) -> None:
    assert CANON.state(raw, country) == code


@pytest.mark.parametrize(("raw", "country"), [("CA", None), ("Californa", "US"), ("XX", "US"), ("US-CA", "DE")])
def test_unknown_or_ambiguous_states_stay_unparsed(raw: str, country: str | None) -> None:
    assert CANON.state(raw, country) is None


@pytest.mark.parametrize(("raw", "slug"), [
    ("COMPUTER_SOFTWARE", "technology"), ("Computer Software", "technology"), ("Technology", "technology"),
    ("FINANCIAL_SERVICES", "finance"), ("Financial Services", "finance"), ("Banking", "banking"),
    ("HOSPITAL_HEALTH_CARE", "healthcare"), ("Food & Beverage", "food_beverage"), ("FOOD_BEVERAGES", "food_beverage"),
    ("Not For Profit", "not_for_profit"), ("not_for_profit", "not_for_profit"), ("SaaS", "technology"), ("fintech", "finance"),
    ("Widgets", "manufacturing"), ("COMPUTER_GAMES", "entertainment"),  # config overrides win over the shipped maps
])
def test_industries(raw: str, slug: str) -> None:
    assert CANON.industry(raw) == slug


def test_unknown_industry_stays_unparsed_and_the_shipped_maps_land_in_the_taxonomy() -> None:
    assert CANON.industry("Underwater basket weaving") is None
    assert len(HUBSPOT_INDUSTRIES) >= 145 and set(HUBSPOT_INDUSTRIES.values()) <= set(TAXONOMY)
    assert set(SALESFORCE_INDUSTRIES.values()) <= set(TAXONOMY) and len(SALESFORCE_INDUSTRIES) == 32


@pytest.mark.parametrize(("raw", "code"), [
    ("+49 30 1234567", "DE"), ("+1 415 555 0100", "US"), ("0044 20 7946 0958", "GB"), ("+61 2 9999 9999", "AU"),
    ("+358 9 1234567", "FI"), ("(415) 555-0100", None), ("555-1234", None), ("+999 1", None), ("call me", None),
])
def test_phone_country_only_from_international_numbers(raw: str, code: str | None) -> None:
    assert phone_country(raw) == code


def test_free_mail_domains_come_from_the_maintained_packages() -> None:
    shipped = shipped_free_mail_domains()
    assert {"gmail.com", "yahoo.co.uk", "gmx.de", "mailinator.com"} <= shipped  # free and disposable alike
    assert len(shipped) > 10_000 and "acme.example" not in shipped
    assert "mailinator.com" in disposable_domains() and "gmail.com" not in disposable_domains()


def test_config_values_are_checked() -> None:
    with pytest.raises(ValueError, match="country_aliases.Narnia"):
        CanonicalSettings(country_aliases={"Narnia": "Narnia"})
    with pytest.raises(ValueError, match="state_aliases.Calif"):
        CanonicalSettings(state_aliases={"Calif": "CA"})
    with pytest.raises(ValueError, match="industry_map.fintech: 'fin_tech' is not a taxonomy slug"):
        CanonicalSettings(industry_map={"fintech": "fin_tech"})


def test_docs_list_the_taxonomy_and_both_crms_maps_as_shipped() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "industries.md").read_text(encoding="utf-8")
    rows = {line for line in text.splitlines() if line.startswith("|")}
    assert all(f"| `{slug}` |" in text for slug in TAXONOMY)
    assert all(f"| {raw} | `{slug}` |" in rows for raw, slug in SALESFORCE_INDUSTRIES.items())
    assert all(f"| `{raw}` | `{slug}` |" in rows for raw, slug in HUBSPOT_INDUSTRIES.items())
