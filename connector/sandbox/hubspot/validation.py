"""What the HubSpot sandbox refuses on an API write: per-property problems and the per-record error they become."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from connector.sandbox.hubspot.properties import PropertyDef
from connector.sandbox.hubspot.records import Record
from connector.sandbox.hubspot.wire import float_or_none, time_ms

Problem = tuple[str, str, str]  # (property, error code, message)
# The configured (category, message) failure for writes to any of these ids, or None.
ForcedFailure = Callable[..., tuple[str, str] | None]


def validation_error(problems: list[Problem], context: dict[str, list[str]]) -> dict[str, Any]:
    """The VALIDATION_ERROR a write with invalid values gets, listing every problem."""
    detail = [{"isValid": False, "message": msg, "error": code, "name": name} for name, code, msg in problems]
    context["propertyName"] = [name for name, _, _ in problems]
    return {
        "status": "error", "category": "VALIDATION_ERROR",
        "message": f"Property values were not valid: {json.dumps(detail)}",
        "context": context, "links": {},
        "errors": [{"message": msg, "code": code, "context": {"propertyName": [name]}} for name, code, msg in problems],
    }


def write_error(defs: Mapping[str, PropertyDef], owners: Mapping[str, Mapping[str, Any]], record: Record, key: str,
                properties: Mapping[str, Any], trace: Any, forced_failure: ForcedFailure) -> dict[str, Any] | None:
    """The per-record error of one write input (a configured failure or invalid values), or None if it is fine."""
    context: dict[str, list[str]] = {"ids": [key]}
    if trace is not None:
        context["objectWriteTraceId"] = [str(trace)]
    forced = forced_failure(key, str(record.id))
    if forced is not None:
        category, message = forced
        return {"status": "error", "category": category, "message": message, "context": context, "links": {}, "errors": []}
    problems = validate(defs, owners, properties, record)
    return validation_error(problems, context) if problems else None


def validate(defs: Mapping[str, PropertyDef], owners: Mapping[str, Mapping[str, Any]], properties: Mapping[str, Any],
             record: Record | None) -> list[Problem]:
    """(property, code, message) for every value HubSpot would refuse on an API write.

    [crm-behaviour: HubSpot owners: assign by owner id] [crm-behaviour: HubSpot lifecycle stages move forward only]
    """
    problems: list[Problem] = []
    for name, raw in properties.items():
        value = "" if raw is None else str(raw)
        pdef = defs.get(name)
        if pdef is None or pdef.archived:
            problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
        elif pdef.read_only:
            problems.append((name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'))
        elif value == "":
            continue  # "" clears any writable property [crm-behaviour: HubSpot property values are strings]
        elif name == "hubspot_owner_id":
            owner = owners.get(value)
            if owner is None or owner["archived"]:
                # Owner ids only: a userId or a deactivated owner is refused [crm-behaviour: HubSpot owners: assign by owner id].
                problems.append((name, "INVALID_OWNER_ID", f"{value} is not a valid owner id"))
        else:
            problem = _value_problem(pdef, value) or _lifecycle_problem(pdef, value, record)
            if problem is not None:
                problems.append(problem)
    return problems


def _value_problem(pdef: PropertyDef, value: str) -> Problem | None:
    name = pdef.name
    if pdef.type == "enumeration" and not pdef.external_options:
        allowed = {v for v, _ in pdef.options}
        chosen = value.split(";") if pdef.is_multi else [value]
        bad = [v for v in chosen if v not in allowed]
        if bad:
            return (name, "INVALID_OPTION", f"{bad[0]!r} was not one of the allowed options: {sorted(allowed)}")
    elif pdef.type == "number" and float_or_none(value) is None:
        return (name, "INVALID_DECIMAL", f"{value!r} is not a valid number")
    elif pdef.type == "bool" and value.lower() not in ("true", "false"):
        return (name, "INVALID_BOOLEAN", f"{value!r} is not a valid boolean (true or false)")
    elif pdef.type in ("date", "datetime") and time_ms(value) is None:
        return (name, "INVALID_DATE", f"{value!r} is not a valid {pdef.type} (epoch milliseconds or ISO-8601)")
    return None


def _lifecycle_problem(pdef: PropertyDef, value: str, record: Record | None) -> Problem | None:
    if pdef.name != "lifecyclestage" or record is None:
        return None
    order = [v for v, _ in pdef.options]
    current = record.props.get(pdef.name, "")
    if current in order and order.index(value) < order.index(current):
        # Lifecycle stage only moves forward through the API: clear it ("") first, then set the
        # earlier stage in a separate request. The sandbox refuses the backward set
        # [crm-behaviour: HubSpot lifecycle stages move forward only].
        return (pdef.name, "INVALID_LIFECYCLE_STAGE",
                f"lifecyclestage cannot move backwards from {current!r} to {value!r}; clear it first")
    return None
