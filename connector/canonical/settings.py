"""Config models of field mapping (`[hubspot.fields.*]`, `[salesforce.fields.*]`) and canonical values (`[canonical]`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.canonical.industries import TAXONOMY

Parse = Literal["text", "number", "number_band", "boolean", "value_map", "multi", "date", "datetime"]
DEFAULT_TRUE = ("true", "yes", "y", "1", "on")
DEFAULT_FALSE = ("false", "no", "n", "0", "off")

# Lead attributes a field mapping may fill, with the parses that fit each one's type.
TEXT_FIELDS = (
    "email", "first_name", "last_name", "title", "seniority", "phone", "company_name", "industry",
    "country", "state", "city", "postal_code", "lead_source",
)
NUMBER_FIELDS = ("employees", "annual_revenue", "deal_size")
BOOL_FIELDS = ("budget", "authority", "need", "timeframe")
LIST_FIELDS = ("product_interest",)
MAPPABLE_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, *BOOL_FIELDS, *LIST_FIELDS)
_PARSES_BY_KIND: dict[str, tuple[str, ...]] = {
    "text": ("text", "value_map"),
    "number": ("number", "number_band", "value_map"),
    "bool": ("boolean", "value_map"),
    "list": ("multi",),
}


def field_kind(name: str) -> str | None:
    """text, number, bool or list for a mappable Lead attribute; None for any other name."""
    for kind, names in (("text", TEXT_FIELDS), ("number", NUMBER_FIELDS), ("bool", BOOL_FIELDS), ("list", LIST_FIELDS)):
        if name in names:
            return kind
    return None


class FieldSpec(BaseModel):
    """Where one Lead attribute comes from in the CRM and how its value is read.

    `property`: the CRM property (HubSpot internal name) or field API name (Salesforce).
    `parse`: text (stripped), number ("1,200", "$10M", "10 000 000"), number_band ("100-500" → 100, band kept;
    "1000+" → 1000), boolean (`true_values` / `false_values`, case-insensitive; any other value is unparsed),
    value_map (`values`: CRM value → the value the lead gets, e.g. true/false for BANT or a seniority level;
    a value not in the map is unparsed), multi (';'-separated, case-folded), date, datetime.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The CRM property (HubSpot internal name, e.g. "numemployees") or Lead field API name (Salesforce, e.g. "Budget__c")
    property: str = Field(min_length=1)
    # text (stripped), number ("1,200", "$10M"), number_band ("100-500" → 100, band kept as employees_band),
    # boolean (true_values / false_values), value_map (values), multi (';'-separated, case-folded), date, datetime
    parse: Parse = "text"
    # boolean: the CRM values read as true (compared case-insensitively)
    true_values: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUE))
    # boolean: the CRM values read as false; a value in neither list is unparsed (counted), never false
    false_values: list[str] = Field(default_factory=lambda: list(DEFAULT_FALSE))
    # value_map: CRM value (compared case-insensitively) → the value the lead gets; a value not listed is unparsed
    values: dict[str, bool | int | float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _map_given(self) -> FieldSpec:
        if self.parse == "value_map" and not self.values:
            raise ValueError("parse = 'value_map' needs values = { CRM value = mapped value, ... }")
        return self


def check_field_specs(specs: dict[str, FieldSpec]) -> list[tuple[str, str]]:
    """(key under `fields`, message) for every spec naming an unknown attribute or a parse that does not fit it."""
    problems: list[tuple[str, str]] = []
    for name, spec in specs.items():
        kind = field_kind(name)
        if kind is None:
            problems.append((name, f"{name!r} is not a mappable lead field; one of: {', '.join(MAPPABLE_FIELDS)}"))
            continue
        if spec.parse not in _PARSES_BY_KIND[kind]:
            problems.append((f"{name}.parse", f"parse {spec.parse!r} does not fit {kind} field {name!r}; use one of: "
                                              f"{', '.join(_PARSES_BY_KIND[kind])}"))
        for raw, value in spec.values.items():
            if not _fits(kind, value):
                problems.append((f"{name}.values.{raw}", f"{kind} field {name!r} cannot hold {value!r}"))
    return problems


def _fits(kind: str, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


class CanonicalSettings(BaseModel):
    """`[canonical]`: canonical values in the common model (on by default; no keys needed).

    Country → ISO 3166-1 alpha-2 from names, native names, aliases and codes; state → ISO 3166-2 subdivision
    code without the country prefix ("CA"); industry → one taxonomy slug (docs/industries.md); the raw CRM
    text stays readable to rules as `raw.country`, `raw.state`, `raw.industry`, ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # false: country, state and industry keep the CRM's own text (no ISO codes, no taxonomy)
    enabled: bool = True
    # Extra country spellings → ISO alpha-2 code, on top of the shipped names and aliases: { "Untied States" = "US" }
    country_aliases: dict[str, str] = Field(default_factory=dict)
    # Extra state spellings → ISO 3166-2 code with its country prefix: { "Calif." = "US-CA" }
    state_aliases: dict[str, str] = Field(default_factory=dict)
    # CRM industry values → taxonomy slug, over the shipped HubSpot and Salesforce maps: { "fintech" = "finance" }
    industry_map: dict[str, str] = Field(default_factory=dict)
    # When a lead's country is empty, take it from an international phone number (+49 …); marked country_inferred
    infer_country_from_phone: bool = True

    @model_validator(mode="after")
    def _codes(self) -> CanonicalSettings:
        for raw, code in self.country_aliases.items():
            if not (len(code) == 2 and code.isalpha()):
                raise ValueError(f"country_aliases.{raw}: {code!r} is not an ISO 3166-1 alpha-2 code (e.g. \"US\")")
        for raw, code in self.state_aliases.items():
            if "-" not in code:
                raise ValueError(f"state_aliases.{raw}: {code!r} needs its country prefix (e.g. \"US-CA\")")
        for raw, slug in self.industry_map.items():
            if slug not in TAXONOMY:
                raise ValueError(f"industry_map.{raw}: {slug!r} is not a taxonomy slug (docs/industries.md): {', '.join(TAXONOMY)}")
        return self
