"""Canonical values and field mapping: CRM values → the common model's one vocabulary.

Countries and states as ISO 3166 codes, industries as one taxonomy, numbers from bands and money text, booleans
and value maps, multi-selects case-folded; free-mail domains from maintained packages. Data is loaded here (the
engine receives it). Adapters read records through `FieldReader`; `ParseStats` counts what did not parse.
"""

from __future__ import annotations

from connector.canonical.reader import Canonical, FieldReader
from connector.canonical.settings import CanonicalSettings, FieldSpec, check_field_specs
from connector.canonical.stats import FieldSource, FieldTally, HasFieldReport, ParseStats, report_parse_stats

__all__ = [
    "Canonical",
    "CanonicalSettings",
    "FieldReader",
    "FieldSource",
    "FieldSpec",
    "FieldTally",
    "HasFieldReport",
    "ParseStats",
    "check_field_specs",
    "report_parse_stats",
]
