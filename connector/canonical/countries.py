"""Countries and states → ISO 3166 codes, from pycountry's tables (names, official and common names, codes, and the
names in major languages) plus a small alias table for spellings pycountry does not hold. Exact look-ups only
(case, accents and punctuation ignored): a typo stays unparsed instead of becoming a guessed country."""

from __future__ import annotations

import gettext
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

import pycountry

# Spellings people and forms use that pycountry's names and translations lack.
COUNTRY_ALIASES: dict[str, str] = {
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB", "Scotland": "GB",
    "Wales": "GB", "Northern Ireland": "GB", "United Kingdom of Great Britain": "GB",
    "U.S.": "US", "U.S.A.": "US", "America": "US", "United States of America": "US", "Estados Unidos": "US",
    "Holland": "NL", "The Netherlands": "NL", "Russia": "RU", "Ivory Coast": "CI", "Macedonia": "MK",
    "Swaziland": "SZ", "Burma": "MM", "Cape Verde": "CV", "Czech Republic": "CZ", "Vatican": "VA",
    "Vatican City": "VA", "Korea": "KR", "Republic of Korea": "KR", "North Korea": "KP", "UAE": "AE",
    "Emirates": "AE", "Palestine": "PS", "Turkey": "TR", "Hong Kong SAR": "HK", "Macau": "MO", "Brunei": "BN",
    "East Timor": "TL", "Deutschland": "DE", "KSA": "SA", "Türkiye": "TR",
}
# Languages whose country names are indexed (the native names of most countries leads come from).
LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "sv", "fi", "da", "nb", "pl", "cs", "ru", "ja", "zh_CN", "ko", "tr",
             "el", "hu", "ro", "uk", "he", "ar", "th", "id", "vi")
_PUNCT = re.compile(r"[^\w]+")
# Raw values remembered per look-up table (a long-running service meets many spellings; the table starts over when full).
CACHE_SIZE = 20_000


class _Bare(dict[int, int | None]):
    """A str.translate table that drops combining marks, filled per code point as texts meet them."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_BARE = _Bare()


def fold(text: str) -> str:
    """The look-up key of a name: case-folded, accents removed, punctuation and spacing collapsed ("Côte d'Ivoire" → "cote d ivoire")."""
    if text.isascii():  # nothing to decompose; ASCII case-folds as lower() does
        return _PUNCT.sub(" ", text.lower()).strip()
    bare = unicodedata.normalize("NFKD", text.casefold()).translate(_BARE)
    return _PUNCT.sub(" ", bare).strip()


@lru_cache(maxsize=1)
def country_index() -> Mapping[str, str]:
    """Folded name or code → ISO alpha-2, built once: codes and English names first, then aliases, then translations."""
    index: dict[str, str] = {}
    folded: dict[str, str] = {}  # many names repeat across attributes and languages: fold each once
    # Each country's attributes read once (pycountry answers every attribute read through __getattr__)
    countries = [(c.alpha_2, [getattr(c, attr, None) for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name")])
                 for c in pycountry.countries]
    for code, (alpha_2, alpha_3, name, official, common) in countries:
        for value in (alpha_2, alpha_3, name, official, common):
            if value:
                index.setdefault(_fold_once(value, folded), code)
    for alias, code in COUNTRY_ALIASES.items():
        index.setdefault(fold(alias), code)
    for language in LANGUAGES:
        try:
            names = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:
            continue
        for code, (_, _, name, official, common) in countries:
            for value in (name, common, official):
                if value:
                    index.setdefault(_fold_once(names.gettext(value), folded), code)
    index.pop("", None)
    return index


def _fold_once(text: str, folded: dict[str, str]) -> str:
    key = folded.get(text)
    if key is None:
        key = folded[text] = fold(text)
    return key


@lru_cache(maxsize=1)
def subdivision_index() -> tuple[Mapping[tuple[str, str], str], Mapping[str, frozenset[str]]]:
    """((country, folded name or code) → subdivision code without prefix, folded name → every full code it names)."""
    by_country: dict[tuple[str, str], str] = {}
    by_name: dict[str, set[str]] = {}
    for sub in pycountry.subdivisions:
        code = sub.code
        name = fold(sub.name)
        country, _, short = code.partition("-")
        by_country.setdefault((country, fold(short)), short)
        by_country.setdefault((country, name), short)
        by_name.setdefault(name, set()).add(code)
    return by_country, {name: frozenset(codes) for name, codes in by_name.items()}


class Places:
    """Country and state look-ups with the config's aliases on top; results are cached per raw value."""

    def __init__(self, country_aliases: Mapping[str, str] | None = None, state_aliases: Mapping[str, str] | None = None) -> None:
        self._extra_countries = {fold(k): v.upper() for k, v in (country_aliases or {}).items()}
        self._extra_states = {fold(k): v.upper() for k, v in (state_aliases or {}).items()}
        self._countries: dict[str, str | None] = {}
        self._states: dict[tuple[str | None, str], tuple[str | None, str | None]] = {}

    def country(self, raw: str) -> str | None:
        """ISO alpha-2 of a country name, native name, alias or code; None when it is none of them."""
        found = self._countries.get(raw, "")
        if found != "":
            return found
        key = fold(raw)
        code = self._extra_countries.get(key) or country_index().get(key)
        if len(self._countries) >= CACHE_SIZE:
            self._countries.clear()
        self._countries[raw] = code
        return code

    def state(self, raw: str, country: str | None) -> tuple[str | None, str | None]:
        """(country, subdivision code without prefix) of a state name or code; (None, None) when unknown.

        "US-CA" names its country; "CA" and "California" need the lead's country unless the name is unique.
        """
        cache_key = (country, raw)
        if cache_key in self._states:
            return self._states[cache_key]
        found = self._find_state(raw, country)
        if len(self._states) >= CACHE_SIZE:
            self._states.clear()
        self._states[cache_key] = found
        return found

    def _find_state(self, raw: str, country: str | None) -> tuple[str | None, str | None]:
        by_country, by_name = subdivision_index()
        key = fold(raw)
        full = self._extra_states.get(key) or raw.strip().upper()
        prefix, dash, short = full.partition("-")
        if dash and len(prefix) == 2 and (prefix, fold(short)) in by_country and (country in (None, prefix)):
            return prefix, by_country[(prefix, fold(short))]
        if country is not None:
            found = by_country.get((country, key))
            return (country, found) if found else (None, None)
        codes = by_name.get(key, frozenset())
        if len(codes) == 1:
            prefix, _, short = next(iter(codes)).partition("-")
            return prefix, short
        return None, None
