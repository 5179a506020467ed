"""Salesforce start-up check: the Lead fields the connector writes exist, are editable and hold our values; the fields
the field mapping reads have types their parsers fit (warned, not fatal)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.adapters.salesforce.client import SalesforceClient
from connector.adapters.salesforce.fields import CODE_FIELDS, NUMBER_TYPES, OBJECT, TEXT_TYPES, Described, active_values
from connector.canonical import FieldSource, FieldSpec
from connector.canonical.schema import field_source
from connector.config import SalesforceSettings
from connector.core.errors import ConfigError, ConfigProblem, CrmApiError

log = logging.getLogger("connector.adapters.salesforce")


def bootstrap(client: SalesforceClient, settings: SalesforceSettings, grade_options: Sequence[str]) -> None:
    """Check (describe) that the fields the connector writes exist, are editable and hold our values.

    Salesforce fields cannot be created over the REST API, so a missing field is a ConfigError
    telling the admin what to create; every problem is listed at once.
    """
    s = settings
    fields = client.lead_fields()
    problems: list[ConfigProblem] = []
    _check(fields, problems, "salesforce.score_field", s.score_field, NUMBER_TYPES,
           f"create a Number(5, 1) custom field with API name {s.score_field} on Lead in Setup → Object Manager → "
           "Lead → Fields & Relationships and give the API user edit access")
    grade = _check(fields, problems, "salesforce.grade_field", s.grade_field, TEXT_TYPES,
                   f"create a Picklist field {s.grade_field} on Lead with the grade values {', '.join(grade_options)}")
    if grade is not None and grade.get("type") == "picklist":
        values = {v.casefold() for v in active_values(grade)}
        missing = [g for g in grade_options if g.casefold() not in values]
        if missing:
            problems.append(ConfigProblem("salesforce.grade_field", f"picklist {s.grade_field!r} lacks the grade value(s) "
                                                                    f"{', '.join(missing)}; add them in Setup or change the grades"))
    stage = _check(fields, problems, "salesforce.stage_field", s.stage_field, TEXT_TYPES, f"create a Picklist field {s.stage_field} on Lead")
    if stage is not None and stage.get("type") == "picklist":
        values = {v.casefold() for v in active_values(stage)}
        for i, status in enumerate(s.status_order):
            if status.casefold() not in values:
                problems.append(ConfigProblem(f"salesforce.status_order[{i}]",
                                              f"{status!r} is not an active value of Lead.{s.stage_field}"))
    for alias, name in s.extra_fields.items():
        if name not in fields:
            problems.append(ConfigProblem(f"salesforce.extra_fields.{alias}", f"Lead field {name!r} does not exist in this org"))
    if s.lead_filter.strip():
        try:
            client.call("query", "read", lambda sf: sf.query(f"SELECT Id FROM {OBJECT} WHERE ({s.lead_filter}) LIMIT 1"))
        except CrmApiError as exc:
            problems.append(ConfigProblem("salesforce.lead_filter", f"Salesforce rejects this filter ({exc.code}): {exc}"))
    if problems:
        raise ConfigError(problems)


def field_sources(described: Described, specs: Mapping[str, FieldSpec]) -> list[FieldSource]:
    """Each mapped field's Lead field (CountryCode / StateCode when the org has them), its describe type and
    whether its parser fits it."""
    sources = []
    for name, spec in specs.items():
        code = CODE_FIELDS.get(spec.property)
        if code and code in described:
            sources.append(FieldSource(name, code, spec.parse, str(described[code].get("type") or ""), None))
            continue
        entry = described.get(spec.property)
        sources.append(field_source(name, spec, entry, active_values(entry) if entry else ()))
    return sources


def warn_mismatches(sources: Iterable[FieldSource], configured: Mapping[str, FieldSpec]) -> None:
    """One start-up warning per mapped field whose type disagrees with its parser (a missing standard field only
    when the config names it)."""
    for source in sources:
        if source.problem and (source.crm_type is not None or source.field in configured):
            log.warning("salesforce: field %s: %s (salesforce.fields.%s)", source.field, source.problem, source.field)


def _check(fields: Described, problems: list[ConfigProblem], key: str, name: str, types: frozenset[str],
           create_hint: str) -> Mapping[str, Any] | None:
    """The field's describe entry, noting a problem when it is missing, read-only or of another type."""
    described = fields.get(name)
    if described is None:
        problems.append(ConfigProblem(key, f"Lead field {name!r} does not exist in this org; {create_hint} "
                                           "(the connector cannot create fields through the REST API)"))
        return None
    if not described.get("updateable"):
        problems.append(ConfigProblem(key, f"Lead field {name!r} is not editable by the API user; grant edit "
                                           "access in field-level security"))
    if described.get("type") not in types:
        problems.append(ConfigProblem(key, f"Lead field {name!r} is of type {described.get('type')!r}; "
                                           f"expected one of {', '.join(sorted(types))}"))
    return described
