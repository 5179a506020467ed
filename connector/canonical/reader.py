"""Reading one CRM record into Lead attribute values: each mapped field parsed by its spec, places and industry made
canonical, the raw text kept, and every outcome counted in ParseStats (never a log line per lead)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.canonical.countries import CACHE_SIZE, Places
from connector.canonical.industries import industry_index, industry_key
from connector.canonical.parsers import value_parser
from connector.canonical.phones import phone_country
from connector.canonical.settings import LIST_FIELDS, CanonicalSettings, FieldSpec
from connector.canonical.stats import ParseStats

# Fields whose text is turned into a canonical value (when [canonical] enabled and the field is read as text).
PLACE_AND_INDUSTRY = ("country", "state", "industry")
MEMO_SIZE = 4096


class Canonical:
    """Canonical countries, states and industries with the config's additions; every look-up cached by raw value."""

    def __init__(self, settings: CanonicalSettings | None = None) -> None:
        self.settings = settings or CanonicalSettings()
        self.places = Places(self.settings.country_aliases, self.settings.state_aliases)
        self._industries: dict[str, str] | None = None
        self._industry_cache: dict[str, str | None] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def country(self, raw: str) -> str | None:
        return self.places.country(raw)

    def state(self, raw: str, country: str | None) -> str | None:
        return self.places.state(raw, country)[1]

    def industry(self, raw: str) -> str | None:
        if raw not in self._industry_cache:
            if self._industries is None:
                self._industries = industry_index(self.settings.industry_map)
            if len(self._industry_cache) >= CACHE_SIZE:
                self._industry_cache.clear()
            self._industry_cache[raw] = self._industries.get(industry_key(raw))
        return self._industry_cache[raw]

    def phone_country(self, phone: str) -> str | None:
        return phone_country(phone) if self.settings.infer_country_from_phone else None


def is_blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or (isinstance(raw, list | tuple) and not raw)


@dataclass
class FieldReader:
    """Reads the mapped fields of one record (`get(property)` gives a raw value) into Lead attribute values."""

    specs: Mapping[str, FieldSpec]
    canonical: Canonical
    stats: ParseStats
    # (field, property, how, parser, memo): how is "canonical" (text made canonical after the loop), "text" (kept)
    # or "typed" (parsed); memo holds parse results by raw text (bands, revenue text and picklist values repeat)
    _plan: list[tuple[str, str, str, Callable[[Any], Any], dict[str, tuple[bool, Any]]]] = field(default_factory=list)
    # The values of a record with every mapped field empty, copied per record
    _blank: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        canonical = self.canonical.enabled
        # Names interned: the values become Lead(**values) keywords, and a keyword that is not the very string of
        # its parameter's name (a name read from config) is matched by comparing its text with parameter after parameter
        self._plan = [
            (sys.intern(name), spec.property,
             "canonical" if canonical and spec.parse == "text" and name in PLACE_AND_INDUSTRY
             else "text" if spec.parse == "text" else "typed",
             value_parser(spec), {})
            for name, spec in self.specs.items()
        ]
        self._blank = {plan[0]: () if plan[0] in LIST_FIELDS else None for plan in self._plan}
        self._blank.update(employees_band=None, country_inferred=False)

    def read(self, get: Callable[[str], Any]) -> dict[str, Any]:
        """Lead attribute values, plus `raw` (the CRM text of each field that had a value), `employees_band` and
        `country_inferred`. A value that does not parse leaves its attribute empty and is counted."""
        values = self._blank.copy()
        raw_text: dict[str, str] = {}
        canonical_text: dict[str, str] = {}
        country_blank = False
        stats = self.stats
        tallies = stats.tallies
        for name, prop, how, parse, memo in self._plan:
            raw = get(prop)
            tally = tallies.get(name) or stats.tally(name)
            tally.seen += 1
            # CRM values are mostly str: strip once, no is_blank / str() calls
            if raw.__class__ is str:
                text = raw.strip()
                blank = not text
            else:
                blank = raw is None or is_blank(raw)
                text = "" if blank else ";".join(map(str, raw)) if isinstance(raw, list | tuple) else str(raw).strip()
            if blank:
                tally.empty += 1
                country_blank = country_blank or name == "country"
                continue
            raw_text[name] = text if raw.__class__ is not bool else "true" if raw else "false"
            if how == "canonical":
                canonical_text[name] = text
            elif how == "text":
                tally.parsed += 1
                values[name] = text
            else:
                ok, parsed = memo[raw] if raw.__class__ is str and raw in memo else _parsed(memo, parse, raw)
                if not ok:
                    tally.note_unparsed(raw_text[name])
                    continue
                tally.parsed += 1
                if name == "employees" or isinstance(parsed, tuple):
                    self._assign(values, name, parsed)
                else:  # the common case, without _assign's checks
                    values[name] = parsed
        if canonical_text or country_blank:
            self._canonical(values, canonical_text, country_blank=country_blank)
        values["raw"] = raw_text
        return values

    @staticmethod
    def _assign(values: dict[str, Any], name: str, parsed: Any) -> None:
        if isinstance(parsed, tuple) and name not in LIST_FIELDS:  # number_band: (lower bound, band)
            parsed, band = parsed
            if name == "employees":
                values["employees_band"] = band
        if name == "employees" and isinstance(parsed, float):
            parsed = int(parsed) if parsed.is_integer() else parsed
        values[name] = parsed

    def _canonical(self, values: dict[str, Any], text: Mapping[str, str], *, country_blank: bool) -> None:
        """Country (else, when the field is empty, inferred from an international phone number), then state
        within that country, then industry."""
        canon = self.canonical
        if "country" in text:
            values["country"] = self._mapped("country", text["country"], canon.country(text["country"]))
        elif country_blank and canon.enabled and (phone := values.get("phone")) and (inferred := canon.phone_country(phone)):
            values["country"], values["country_inferred"] = inferred, True
            self.stats.tally("country").inferred += 1
        if "state" in text:
            values["state"] = self._mapped("state", text["state"], canon.state(text["state"], values.get("country")))
        if "industry" in text:
            values["industry"] = self._mapped("industry", text["industry"], canon.industry(text["industry"]))

    def _mapped(self, name: str, raw: str, found: str | None) -> str | None:
        tally = self.stats.tally(name)
        if found is None:
            tally.note_unparsed(raw)
        else:
            tally.parsed += 1
        return found


def _parsed(memo: dict[str, tuple[bool, Any]], parse: Callable[[Any], Any], raw: Any) -> tuple[bool, Any]:
    """(parsed?, value) of one raw value, remembered per raw text (at most MEMO_SIZE values a field)."""
    try:
        found: tuple[bool, Any] = (True, parse(raw))
    except (TypeError, ValueError):
        found = (False, None)
    if isinstance(raw, str) and len(memo) < MEMO_SIZE:
        memo[raw] = found
    return found


def parse_counted(stats: ParseStats, name: str, raw: Any, parse: Callable[[Any], Any], *, count_empty: bool = True) -> Any:
    """One value outside the field mapping (score, timestamps, counters) parsed and counted under `name`; None
    when empty or when it does not parse. `count_empty=False` leaves absent values out of the tally."""
    blank = raw is None or (not raw.strip() if raw.__class__ is str else is_blank(raw))
    if blank and not count_empty:
        return None
    tally = stats.tally(name)
    tally.seen += 1
    if blank:
        tally.empty += 1
        return None
    try:
        value = parse(raw)
    except (TypeError, ValueError):
        tally.note_unparsed(raw)
        return None
    tally.parsed += 1
    return value


def latest_counted(stats: ParseStats, name: str, raws: Iterable[Any], parse: Callable[[Any], Any]) -> Any:
    """The latest of the stamps `raws` parse to, each counted under `name` (absent ones are not counted); on a tie
    the first stays. Both CRMs' last activity: the newest of several engagement fields."""
    latest = None
    for raw in raws:
        if raw is None:
            continue
        stamp = parse_counted(stats, name, raw, parse, count_empty=False)
        if stamp is not None and (latest is None or stamp > latest):
            latest = stamp
    return latest

