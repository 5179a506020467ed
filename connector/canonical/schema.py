"""Does a mapped CRM property's real type (HubSpot properties API, Salesforce describe) fit the parser it is read with?"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from connector.canonical.settings import FieldSpec
from connector.canonical.stats import FieldSource

_TEXTUAL = frozenset({"string", "textarea", "enumeration", "picklist", "combobox", "phonenumber", "phone", "email", "url"})
# parse -> the CRM types it reads correctly (HubSpot: string number date datetime enumeration bool; Salesforce describe types)
FITTING_TYPES: dict[str, frozenset[str]] = {
    "text": frozenset(),  # anything reads as text
    "number": frozenset({"number", "int", "double", "currency", "percent", "long", "string", "textarea"}),
    "number_band": frozenset({"number", "int", "double", "currency", "long", "string", "textarea", "enumeration", "picklist"}),
    "boolean": frozenset({"bool", "boolean", *_TEXTUAL}),
    "value_map": frozenset({"bool", "boolean", "number", "int", "double", *_TEXTUAL, "multipicklist"}),
    "multi": frozenset({"enumeration", "multipicklist", "picklist", "string", "textarea"}),
    "date": frozenset({"date", "datetime", "string"}),
    "datetime": frozenset({"date", "datetime", "string"}),
}
_ENUMERATIONS = frozenset({"enumeration", "picklist", "multipicklist"})


def field_source(name: str, spec: FieldSpec, described: Mapping[str, object] | None, options: Collection[str] = ()) -> FieldSource:
    """Where `name` is read from, the property's real type (None: it does not exist) and the mismatch, if any.

    `options`: an enumeration's / picklist's values; a value map whose keys are none of them is reported.
    """
    if described is None:
        return FieldSource(name, spec.property, spec.parse, None, f"{spec.property} does not exist")
    crm_type = str(described.get("type") or "")
    fitting = FITTING_TYPES[spec.parse]
    problem = None
    if fitting and crm_type not in fitting:
        hint = "; use parse = \"number_band\"" if spec.parse == "number" and crm_type in _ENUMERATIONS else ""
        problem = f"{spec.property} is {_article(crm_type)} {crm_type} but parse = {spec.parse!r}{hint}"
    elif spec.parse == "value_map" and options:
        known = {o.casefold() for o in options}
        unknown = sorted(k for k in spec.values if k.strip().casefold() not in known)
        if unknown:
            problem = f"values {unknown} are not options of {spec.property} (it has {sorted(options)[:12]})"
    return FieldSource(name, spec.property, spec.parse, crm_type, problem)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
