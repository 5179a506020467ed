"""Parse statistics: per common field, how many CRM values parsed, were empty, inferred or did not parse (and which)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Distinct unparsed values kept per field (the counts stay exact; values past this are tallied as "…").
MAX_DISTINCT_UNPARSED = 100
MAX_VALUE_CHARS = 60
OTHER_VALUES = "…"


@dataclass
class FieldTally:
    """One field over every record read: seen = records, empty = no value (inferred: filled by inference),
    parsed = a value that parsed / mapped to a canonical value, unparsed = a value that did not (by raw value)."""

    seen: int = 0
    parsed: int = 0
    empty: int = 0
    inferred: int = 0
    unparsed: Counter[str] = field(default_factory=Counter)

    @property
    def unparsed_count(self) -> int:
        return sum(self.unparsed.values())

    @property
    def share_parsed(self) -> float | None:
        """parsed / (parsed + unparsed); None when no record held a value."""
        valued = self.parsed + self.unparsed_count
        return self.parsed / valued if valued else None

    def note_unparsed(self, raw: object) -> None:
        text = str(raw).strip()[:MAX_VALUE_CHARS]
        if text in self.unparsed or len(self.unparsed) < MAX_DISTINCT_UNPARSED:
            self.unparsed[text] += 1
        else:
            self.unparsed[OTHER_VALUES] += 1


@dataclass
class ParseStats:
    """Tallies by common field name, accumulated over every record an adapter normalized (reset() to start over)."""

    tallies: dict[str, FieldTally] = field(default_factory=dict)

    def tally(self, name: str) -> FieldTally:
        found = self.tallies.get(name)
        if found is None:
            found = self.tallies[name] = FieldTally()
        return found

    def reset(self) -> None:
        self.tallies.clear()

    def summary(self, top: int = 0) -> list[str]:
        """One line per field that held unparsed values: `country: 3 of 120 values unparsed`; with `top`, the most
        common of them too (`('Untied States' ×2, 'N/A' ×1)`; logs leave them out: values may be personal data)."""
        lines = []
        for name, t in sorted(self.tallies.items()):
            bad = t.unparsed_count
            if not bad:
                continue
            common = ", ".join(f"{value!r} ×{n}" for value, n in t.unparsed.most_common(top)) if top else ""
            lines.append(f"{name}: {bad} of {t.parsed + bad} values unparsed" + (f" ({common})" if common else ""))
        return lines


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Where a common field is read from in one CRM, the type the CRM's schema reports and what is wrong, if anything."""

    field: str
    property: str
    parse: str
    crm_type: str | None  # None: the property does not exist in this account / org
    problem: str | None = None


@runtime_checkable
class HasFieldReport(Protocol):
    """An adapter that counts its parse results and can say where each field comes from (both CRMs' adapters)."""

    @property
    def parse_stats(self) -> ParseStats: ...

    def field_sources(self) -> list[FieldSource]: ...


def report_parse_stats(crm: str, stats: ParseStats, log: logging.Logger) -> None:
    """Log the run's unparsed values once, as one warning per CRM, then start counting anew."""
    lines = stats.summary()
    if lines:
        log.warning("%s: values that did not parse this run (left empty; `connector doctor` lists them; map them under "
                    "[%s.fields] or [canonical]):\n  %s", crm, crm, "\n  ".join(lines))
    stats.reset()
