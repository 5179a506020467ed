"""Config lines `connector doctor` suggests for what is missing: a mapping for an unmapped field (from a CRM property
whose name looks right and its real options), a parser fitting the property's type, aliases for unknown countries."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.adapters.base import CrmAdapter
from connector.canonical.stats import OTHER_VALUES
from connector.config import Settings

if TYPE_CHECKING:
    from connector.ops.doctor import FieldCheck

# What a CRM property holding each common field tends to be called (name or label), for unmapped fields.
LOOKS_LIKE: dict[str, str] = {
    "budget": r"budget",
    "authority": r"authority|decision|buying.?role",
    "need": r"need|pain|use.?case",
    "timeframe": r"time.?frame|timeline|purchase.?time|buying.?time",
    "seniority": r"seniority|job.?level|management.?level",
    "product_interest": r"product.?interest|interested.?in|products?",
    "deal_size": r"deal.?size|deal.?amount|expected.?amount|opportunity.?amount",
    "employees": r"employees|company.?size|headcount",
    "annual_revenue": r"revenue",
    "industry": r"industry|vertical",
    "lead_source": r"lead.?source|source",
}
BOOLEAN_FIELDS = frozenset({"budget", "authority", "need", "timeframe"})
NUMBER_FIELDS = frozenset({"employees", "annual_revenue", "deal_size"})
LIST_FIELDS = frozenset({"product_interest"})
# Options that mean "not met" for a BANT picklist (the rest are suggested as met; the admin checks them) ...
_NOT_MET = re.compile(r"^(no|none|not|non|unknown|n/?a|under|less|0|never|undecided|no_|not_)", re.IGNORECASE)
# ... except authority, met only by the options that name a decision maker (an influencer or an end user is not).
_HAS_AUTHORITY = re.compile(r"decision|maker|approv|econom|sign|owner|exec|c.?level|yes|true", re.IGNORECASE)
_ENUM_TYPES = frozenset({"enumeration", "picklist", "select", "radio", "checkbox", "multipicklist"})
_MULTI_TYPES = frozenset({"multipicklist", "checkbox"})
_BOOL_TYPES = frozenset({"bool", "boolean", "booleancheckbox"})
_NUMBER_TYPES = frozenset({"number", "int", "double", "currency", "percent"})


def suggestions(settings: Settings, adapter: CrmAdapter, checks: Sequence[FieldCheck]) -> list[str]:
    """Suggested config snippets (TOML, one string each, lines joined by newlines) for the problems in `checks`."""
    crm = adapter.crm
    schema = _schema(adapter)
    out: list[str] = []
    for check in checks:
        if check.status == "unmapped" and "." not in check.field:
            out.append(_mapping(crm, check.field, _candidate(check.field, schema)))
        elif check.status == "mismatch" and check.mapped_property:
            out.append(_reparse(crm, check))
    countries = [v for c in checks if c.field == "country" for v, _ in c.unparsed]
    if countries:
        out.append(country_aliases(countries))
    industries = [v for c in checks if c.field == "industry" for v, _ in c.unparsed]
    if industries:
        out.append(industry_map(industries))
    return out


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One property of the CRM's lead object as its schema describes it."""

    name: str
    label: str
    crm_type: str
    options: tuple[str, ...]  # an enumeration's / picklist's values (active ones)


def _schema(adapter: CrmAdapter) -> list[SchemaField]:
    """Every property of the lead object (HubSpot properties API / Salesforce describe), as the adapter read it for
    field_sources; [] when it can't say."""
    described = _described(adapter)
    fields = []
    for name, d in described.items():
        raw_options = d.get("options") or d.get("picklistValues") or []
        options = tuple(str(o.get("value")) for o in raw_options if o.get("value") is not None and o.get("active", True)
                        and not o.get("hidden", False))
        fields.append(SchemaField(str(name), str(d.get("label") or ""), str(d.get("type") or ""), options))
    return fields


def _described(adapter: CrmAdapter) -> Mapping[str, Mapping[str, Any]]:
    """name -> the CRM's own description of each property (read once by the adapter, for field_sources too)."""
    read = getattr(adapter, "schema_properties", None)
    return dict(read()) if callable(read) else {}


def _candidate(field: str, schema: Iterable[SchemaField]) -> SchemaField | None:
    """The property whose name (then label) looks like `field`'s, preferring one with options."""
    pattern = LOOKS_LIKE.get(field)
    if pattern is None:
        return None
    found = [p for p in schema if re.search(pattern, p.name, re.IGNORECASE)]
    found = found or [p for p in schema if re.search(pattern, p.label, re.IGNORECASE)]
    found.sort(key=lambda p: (not p.options, p.name))
    return found[0] if found else None


def _parse_for(field: str, crm_type: str | None, options: Sequence[str]) -> str:
    """The parser a field read from a property of this type needs."""
    kind = (crm_type or "").lower()
    if field in LIST_FIELDS:
        return "multi"
    if field in BOOLEAN_FIELDS:
        return "boolean" if kind in _BOOL_TYPES else "value_map" if options else "boolean"
    if field in NUMBER_FIELDS:
        return "number_band" if kind in _ENUM_TYPES or kind in ("string", "text") else "number"
    return "multi" if kind in _MULTI_TYPES else "text"


def _mapping(crm: str, field: str, prop: SchemaField | None) -> str:
    head = f"[{crm}.fields.{field}]"
    if prop is None:
        return "\n".join([f"# {field} is read by a rule but no {crm} property is mapped to it;", head,
                          'property = "…"   # the property that holds it', f'parse = "{_parse_for(field, None, ())}"'])
    options = list(prop.options)
    parse = _parse_for(field, prop.crm_type, options)
    lines = [f"# {field}: {prop.name!r} looks like it ({prop.crm_type or 'type unknown'}); check the values",
             head, f"property = {json.dumps(str(prop.name))}", f'parse = "{parse}"']
    if parse == "value_map":
        lines.append(f"[{crm}.fields.{field}.values]")
        lines += [f"{json.dumps(o)} = {'true' if _is_met(field, o) else 'false'}" for o in options]
    return "\n".join(lines)


def _is_met(field: str, option: str) -> bool:
    """A first guess at whether a BANT option means the criterion is met."""
    if field == "authority":
        return bool(_HAS_AUTHORITY.search(option))
    return not _NOT_MET.match(option)


def _reparse(crm: str, check: FieldCheck) -> str:
    parse = _parse_for(check.field, check.crm_type, ("?",) if (check.crm_type or "").lower() in _ENUM_TYPES else ())
    return "\n".join([f"# {check.problem}", f"[{crm}.fields.{check.field}]", f"property = {json.dumps(check.mapped_property)}",
                      f'parse = "{parse}"'])


def country_aliases(values: Sequence[str]) -> str:
    """`[canonical] country_aliases` for country values nothing recognised, each with its nearest country's code."""
    guesses = {v: _nearest_country(v) for v in values if v != OTHER_VALUES}
    return _aliases("country", "canonical.country_aliases", "say which country each one means", guesses)


def _aliases(what: str, table: str, ask: str, guesses: Mapping[str, str]) -> str:
    """A `[table]` of value = guess for the values with a guess; the others named in a comment."""
    lines = [f"# {what} values not recognised: {ask}"]
    known = [f"{json.dumps(v)} = {json.dumps(guess)}" for v, guess in guesses.items() if guess]
    lines += [f"[{table}]", *known] if known else []
    unknown = [json.dumps(v) for v, guess in guesses.items() if not guess]
    if unknown:
        lines.append(f"# no {what} close to {', '.join(unknown)}: fix them in the CRM, or add a line each")
    return "\n".join(lines)


def _nearest_country(value: str) -> str:
    """The ISO code of the country whose name (English, native or alias) is closest to a misspelt one
    ("Untied States" → US, "Deutschlnd" → DE), or ""."""
    from connector.canonical.countries import country_index, fold

    names = {name: code for name, code in country_index().items() if len(name) > 3}  # names, not codes
    match = difflib.get_close_matches(fold(value), list(names), n=1, cutoff=0.8)
    return names[match[0]] if match else ""


def industry_map(values: Sequence[str]) -> str:
    """`[canonical.industry_map]` for industry values nothing recognised, each with the nearest taxonomy slug."""
    from connector.canonical.industries import industry_index, industry_key

    index = industry_index()
    guesses: dict[str, str] = {}
    for value in values:
        if value == OTHER_VALUES:
            continue
        match = difflib.get_close_matches(industry_key(value), list(index), n=1, cutoff=0.8)
        guesses[value] = index[match[0]] if match else ""
    return _aliases("industry", "canonical.industry_map", "say which industry each one is (docs/industries.md)", guesses)
