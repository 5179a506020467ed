"""Rule values that can never match a canonical lead: `country in ["USA"]` when leads hold "US", `industry eq
"SOFTWARE"` when leads hold taxonomy slugs. Each named by its key path, with the canonical value to write instead."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pycountry
from pydantic import BaseModel

from connector.canonical.countries import fold
from connector.canonical.industries import TAXONOMY
from connector.canonical.reader import PLACE_AND_INDUSTRY, Canonical
from connector.canonical.settings import FieldSpec

_COMPARING = frozenset({"eq", "ne", "in", "not_in"})


def canonical_value_problems(sections: Mapping[str, BaseModel], canonical: Canonical,
                             mappings: Iterable[tuple[str, FieldSpec]]) -> list[tuple[str, str]]:
    """(key path, message) for each country / state / industry value in a condition that is not a canonical value.

    `sections`: config sections by their key (scoring, routing, notifications); `mappings`: (field, spec) of every
    CRM's configured fields (a field read with another parse than text keeps the CRM's values and is not checked).
    """
    if not canonical.enabled:
        return []
    mapped = list(mappings)
    checked = {name for name in PLACE_AND_INDUSTRY if all(spec.parse == "text" for f, spec in mapped if f == name)}
    problems: list[tuple[str, str]] = []
    for key, section in sections.items():
        for path, cond in _conditions(section, key):
            field = getattr(cond, "field", None)
            if field not in checked or getattr(cond, "op", None) not in _COMPARING:
                continue
            values = cond.value if isinstance(cond.value, list) else [cond.value]
            for value in values:
                message = _problem(str(field), value, canonical)
                if message:
                    problems.append((f"{path}.value", message))
    return problems


def _problem(field: str, value: Any, canonical: Canonical) -> str | None:
    if not isinstance(value, str):
        return None
    if field == "industry":
        if value.strip().casefold() in TAXONOMY:
            return None
        slug = canonical.industry(value)
        hint = f"; write {slug!r}" if slug else " (docs/industries.md lists them)"
        return f"industry {value!r} is not a taxonomy slug: leads hold slugs such as 'technology'{hint}"
    if field == "country":
        if _is_country_code(value, canonical):
            return None
        code = canonical.country(value)
        if code is not None and code == value.strip().upper():
            return None
        hint = f"; write {code!r}" if code else ""
        return f"country {value!r} is not an ISO 3166-1 alpha-2 code: leads hold codes such as 'US'{hint}"
    text = value.strip()
    if len(text) <= 3 and text.isalnum():
        return None
    country, code = canonical.places.state(text, None)
    hint = f"; write {code!r} (or '{country}-{code}')" if code else ""
    return f"state {value!r} is not an ISO 3166-2 subdivision code: leads hold codes such as 'CA'{hint}"


def _is_country_code(value: str, canonical: Canonical) -> bool:
    """`value` is an ISO alpha-2 code, which canonical.country reads as itself unless a configured alias takes that
    spelling; answered without building the name index that look-up needs (0.2 s of every start-up, issue 18)."""
    text = value.strip()
    if len(text) != 2 or not text.isascii() or pycountry.countries.get(alpha_2=text.upper()) is None:
        return False
    return all(fold(alias) != fold(text) for alias in canonical.settings.country_aliases)


def _conditions(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every condition (field test) in a config tree, with its key path; found by shape (field + op)."""
    if isinstance(node, BaseModel):
        if "field" in type(node).model_fields and "op" in type(node).model_fields and getattr(node, "field", None):
            yield path, node
        for name, info in type(node).model_fields.items():
            yield from _conditions(getattr(node, name), f"{path}.{info.alias or name}")
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _conditions(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        for k, item in node.items():
            yield from _conditions(item, f"{path}.{k}")
