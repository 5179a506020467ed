"""HubSpot start-up check: the score, grade and stage properties exist with usable types (created when allowed),
and the properties the field mapping reads have types their parsers fit (warned, not fatal)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hubspot.crm.properties.models import OptionInput, PropertyCreate

from connector.adapters.hubspot.client import HubSpotClient
from connector.canonical import FieldSource, FieldSpec
from connector.canonical.schema import field_source
from connector.config import HubSpotSettings
from connector.core.errors import ConfigError, ConfigProblem

log = logging.getLogger("connector.adapters.hubspot")

Properties = Mapping[str, Mapping[str, Any]]
Create = Callable[[Any], None]  # PropertyCreate -> None (the SDK model is untyped)


def read_properties(client: HubSpotClient, object_type: str) -> dict[str, Mapping[str, Any]]:
    """GET /crm/v3/properties/{object_type}: every property by name, with its type and options."""
    response = client.call("properties.list", "read", client.apis.properties.get_all, object_type)
    return {p["name"]: p for p in response.body.get("results") or [] if "name" in p}


def bootstrap(client: HubSpotClient, settings: HubSpotSettings, grade_options: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """Check the score, grade and stage properties; create missing ones when allowed; ConfigError otherwise.

    Returns the object's properties (the field mapping's types are checked against them)."""
    object_type = settings.object_type
    existing = read_properties(client, object_type)
    group = _property_group(existing.values(), object_type)

    def create(prop: PropertyCreate) -> None:
        client.call("properties.create", "write", client.apis.properties.create, object_type, prop)
        log.info("hubspot: created property %s on %s", prop.name, object_type)

    problems = [
        *_check_score(existing, settings, group, create),
        *_check_grade(existing, settings, group, grade_options, create),
        *_check_stage(existing, settings),
    ]
    if problems:
        raise ConfigError(problems)
    return existing


def field_sources(properties: Properties, specs: Mapping[str, FieldSpec]) -> list[FieldSource]:
    """Each mapped field's contact property, its real type and whether its parser fits it."""
    return [
        field_source(name, spec, properties.get(spec.property),
                     [str(o.get("value")) for o in (properties.get(spec.property) or {}).get("options") or []])
        for name, spec in specs.items()
    ]


def warn_mismatches(sources: Iterable[FieldSource], configured: Mapping[str, FieldSpec]) -> None:
    """One start-up warning per mapped property whose type disagrees with its parser (a missing standard property
    is normal on a trimmed portal and only warned when the config names it)."""
    for source in sources:
        if source.problem and (source.crm_type is not None or source.field in configured):
            log.warning("hubspot: field %s: %s (hubspot.fields.%s)", source.field, source.problem, source.field)


def _check_score(existing: Properties, settings: HubSpotSettings, group: str, create: Create) -> list[ConfigProblem]:
    name, object_type = settings.score_property, settings.object_type
    score = existing.get(name)
    if score is None:
        if not settings.create_properties:
            return [ConfigProblem("hubspot.score_property", _missing(name, object_type, "number"))]
        create(PropertyCreate(
            name=name, label="Lead score (connector)", group_name=group, type="number", field_type="number",
            description="Written by the lead connector: the lead's score.",
        ))
    elif score.get("type") != "number":
        return [ConfigProblem(
            "hubspot.score_property",
            f"property {name!r} on {object_type} has type {score.get('type')!r}; it must be a number property — "
            "name another property or change its type",
        )]
    return []


def _check_grade(existing: Properties, settings: HubSpotSettings, group: str, grade_options: Sequence[str],
                 create: Create) -> list[ConfigProblem]:
    name, object_type = settings.grade_property, settings.object_type
    grade = existing.get(name)
    if grade is None:
        if not settings.create_properties:
            return [ConfigProblem("hubspot.grade_property", _missing(name, object_type, "enumeration (or string)"))]
        create(PropertyCreate(
            name=name, label="Lead grade (connector)", group_name=group, type="enumeration", field_type="select",
            description="Written by the lead connector: the lead's grade.",
            options=[OptionInput(label=g.title(), value=g, display_order=i, hidden=False) for i, g in enumerate(grade_options)],
        ))
    elif grade.get("type") == "enumeration":
        values = {str(o.get("value")) for o in grade.get("options") or []}
        lacking = [g for g in grade_options if g not in values]
        if lacking:
            return [ConfigProblem(
                "hubspot.grade_property",
                f"enumeration {name!r} on {object_type} has no option(s) {lacking}; add them in HubSpot or use a string property",
            )]
    elif grade.get("type") != "string":
        return [ConfigProblem(
            "hubspot.grade_property",
            f"property {name!r} on {object_type} has type {grade.get('type')!r}; it must be an enumeration or string property",
        )]
    return []


def _check_stage(existing: Properties, settings: HubSpotSettings) -> list[ConfigProblem]:
    name = settings.effective_stage_property
    stage = existing.get(name)
    if stage is None:
        return [ConfigProblem("hubspot.stage_property", f"property {name!r} does not exist on {settings.object_type}")]
    # Admins can add and remove lifecycle stages; we must write internal values the account has
    # [crm-behaviour: HubSpot lifecycle stages move forward only].
    options = {str(o.get("value")) for o in stage.get("options") or []}
    unknown = [s for s in settings.stage_order if s not in options]
    if options and unknown:
        return [ConfigProblem(
            "hubspot.stage_order",
            f"{unknown} are not internal values of {name!r} in this account (it has {sorted(options)})",
        )]
    return []


def _property_group(properties: Iterable[Mapping[str, Any]], object_type: str) -> str:
    """The property group new properties go into: the object's standard info group when it exists."""
    groups = [str(p.get("groupName")) for p in properties if p.get("groupName")]
    preferred = "contactinformation" if object_type == "contacts" else "lead_information"
    if preferred in groups or not groups:
        return preferred
    return max(set(groups), key=groups.count)


def _missing(name: str, object_type: str, kind: str) -> str:
    return (
        f"property {name!r} does not exist on {object_type}; create it as a {kind} property in HubSpot, "
        "or set hubspot.create_properties = true"
    )
