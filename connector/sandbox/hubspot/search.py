"""The HubSpot sandbox's CRM search: request limits, filter groups compiled to predicates, free text, sorting, paging."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.objects import (
    CREATED_PROPERTY,
    FILTER_GROUPS_MAX,
    FILTERS_PER_GROUP_MAX,
    FILTERS_TOTAL_MAX,
    MODIFIED_PROPERTY,
    QUERY_PROPERTIES,
    SEARCH_LIMIT_MAX,
    SEARCH_RESULT_CAP,
)
from connector.sandbox.hubspot.properties import PropertyDef
from connector.sandbox.hubspot.records import Record, RecordStore
from connector.sandbox.hubspot.wire import abort, float_or_none, time_ms

OPERATORS = frozenset({
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
})
TOKEN_SPLIT = re.compile(r"[\s@.,;:/\\\-_()'\"]+")

Predicate = Callable[[Record], bool]
Getter = Callable[[Record], Any]


@dataclass(frozen=True, slots=True)
class _Request:
    matcher: Predicate
    lowest_id: int  # every group bounds hs_object_id from below by at least this
    sorts: list[Any]
    limit: int
    after: int
    query_text: str


def search(store: RecordStore, otype: str, body: Any) -> Reply:
    """POST /crm/v3/objects/{type}/search."""
    request = _parse(store, otype, body)
    # Groups are OR'd, filters within a group AND'd [crm-behaviour: HubSpot search filters and sorting].
    # An hs_object_id lower bound in every group (the keyset form,
    # [crm-behaviour: HubSpot incremental polling by keyset]) lets the scan start there: records are kept in id order.
    start = bisect_left(store.order[otype], request.lowest_id)
    candidates = store.rows[otype][start:] if start else store.rows[otype]
    matcher = request.matcher
    found = [r for r in candidates if r.merged_into is None and not r.archived and matcher(r)]
    if request.query_text:
        found = [r for r in found if _text_match(r, QUERY_PROPERTIES[otype], request.query_text)]
    if request.sorts:
        found = _sorted(store, otype, found, request.sorts[0])
    after, limit = request.after, request.limit
    page = found[after:after + limit]
    properties = body.get("properties") or None
    out: dict[str, Any] = {"total": len(found), "results": [store.render(otype, r, properties) for r in page]}
    if after + len(page) < len(found) and page:
        out["paging"] = {"next": {"after": str(after + len(page))}}
    return Reply(200, out)


def _parse(store: RecordStore, otype: str, body: Any) -> _Request:
    if not isinstance(body, dict):
        raise abort(400, "VALIDATION_ERROR", "Search request body must be a JSON object")
    matcher, lowest_id = _compile_groups(store, otype, body.get("filterGroups") or [])
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        # The search schema allows one sort rule (maxItems 1) [crm-behaviour: HubSpot search filters and sorting].
        raise abort(400, "VALIDATION_ERROR", f"Only one sort is allowed, got {len(sorts)}")
    limit = body.get("limit", 10)
    after_raw = body.get("after") or 0
    try:
        limit, after = int(limit), int(after_raw)
    except (TypeError, ValueError):
        raise abort(400, "VALIDATION_ERROR", "limit and after must be whole numbers") from None
    if limit < 0 or limit > SEARCH_LIMIT_MAX:
        raise abort(400, "VALIDATION_ERROR", f"limit must be between 0 and {SEARCH_LIMIT_MAX}, got {limit}")
    if after < 0 or after + limit > SEARCH_RESULT_CAP:
        # The 10,000-result cap: paging beyond it is an HTTP 400 [crm-behaviour: HubSpot search: 10,000 results per query].
        raise abort(400, "VALIDATION_ERROR",
                    f"Search results are limited to {SEARCH_RESULT_CAP}; after ({after}) + limit ({limit}) is beyond it")
    query_text = str(body.get("query") or "").strip().lower()
    return _Request(matcher, lowest_id, sorts, limit, after, query_text)


def _compile_groups(store: RecordStore, otype: str, groups: list[Any]) -> tuple[Predicate, int]:
    """The groups' predicate (OR of ANDs) and the lowest hs_object_id any group can match."""
    if len(groups) > FILTER_GROUPS_MAX:
        raise abort(400, "VALIDATION_ERROR", f"Too many filter groups ({len(groups)}). Max allowed is {FILTER_GROUPS_MAX}")
    total_filters = 0
    predicates: list[Predicate] = []
    lowest_id: int | None = 0 if not groups else None
    for group in groups:
        filters = (group or {}).get("filters") or []
        if len(filters) > FILTERS_PER_GROUP_MAX:
            raise abort(400, "VALIDATION_ERROR",
                        f"Too many filters in a group ({len(filters)}). Max allowed is {FILTERS_PER_GROUP_MAX}")
        total_filters += len(filters)
        predicates.append(_all_of([compile_filter(store.properties[otype], otype, f) for f in filters]))
        floor = _id_floor(filters)
        lowest_id = floor if lowest_id is None else min(lowest_id, floor)
    if total_filters > FILTERS_TOTAL_MAX:
        raise abort(400, "VALIDATION_ERROR", f"Too many filters ({total_filters}). Max allowed is {FILTERS_TOTAL_MAX}")
    return _any_of(predicates), lowest_id or 0


def _text_match(record: Record, text_props: Iterable[str], query_text: str) -> bool:
    values = [record.props.get(name, "").lower() for name in text_props]
    tokens = [t for value in values for t in TOKEN_SPLIT.split(value) if t]
    return any(t.startswith(query_text) for t in tokens) or any(query_text in v for v in values)


def _sorted(store: RecordStore, otype: str, found: list[Record], spec: Any) -> list[Record]:
    name = spec if isinstance(spec, str) else str((spec or {}).get("propertyName") or "")
    descending = not isinstance(spec, str) and str((spec or {}).get("direction") or "ASCENDING").upper() == "DESCENDING"
    if isinstance(spec, str) and name.startswith("-"):
        name, descending = name[1:], True
    if name not in store.properties[otype]:
        raise abort(400, "VALIDATION_ERROR", f"Cannot sort by unknown property {name!r}")
    if name == "hs_object_id" and not descending:
        return found  # records are kept in id order already
    key, _ = getter(store.properties[otype], otype, name)
    present = [r for r in found if key(r) is not None]
    missing = [r for r in found if key(r) is None]
    present.sort(key=lambda r: (key(r), r.id), reverse=descending)
    return present + missing  # records without a value come last either way


def getter(defs: dict[str, PropertyDef], otype: str, name: str) -> tuple[Getter, str]:
    """A value reader for filters / sorts and its comparison kind: number, time or text (case-insensitive)."""
    pdef = defs.get(name)
    if pdef is None or pdef.archived:
        raise abort(400, "VALIDATION_ERROR", f"Property {name!r} does not exist on {otype}")
    if name == "hs_object_id":
        return (lambda r: r.id), "number"
    if name == CREATED_PROPERTY[otype]:
        return (lambda r: r.created_ms), "time"
    if name == MODIFIED_PROPERTY[otype]:
        return (lambda r: r.updated_ms), "time"
    if pdef.type == "number":
        return (lambda r: float_or_none(r.props.get(name))), "number"
    if pdef.type in ("datetime", "date"):
        return (lambda r: time_ms(r.props[name]) if r.props.get(name) else None), "time"
    return (lambda r: (r.props.get(name) or "").lower() or None), "text"


def _converter(name: str, op: str, kind: str) -> Callable[[Any], Any]:
    """Filter values → the kind a getter returns (400 for a missing or unparseable value)."""
    def convert(raw: Any) -> Any:
        if raw is None:
            raise abort(400, "VALIDATION_ERROR", f"Filter on {name} with operator {op} needs a value")
        text = str(raw).lower() if not isinstance(raw, bool) else ("true" if raw else "false")
        if kind == "number":
            value = float_or_none(text)
        elif kind == "time":
            value = time_ms(text)  # epoch ms strings (the documented form) or ISO-8601 [crm-behaviour: HubSpot datetime formats]
        else:
            return text
        if value is None:
            raise abort(400, "VALIDATION_ERROR", f"Filter value {raw!r} for {name} is not a valid {kind}")
        return value

    return convert


def compile_filter(defs: dict[str, PropertyDef], otype: str, spec: Any) -> Predicate:
    """One search filter → a record predicate."""
    if not isinstance(spec, dict):
        raise abort(400, "VALIDATION_ERROR", "Each filter must be an object")
    name = str(spec.get("propertyName") or "")
    op = str(spec.get("operator") or "EQ").upper()
    if op not in OPERATORS:
        raise abort(400, "VALIDATION_ERROR", f"Unknown filter operator {op!r}")
    get, kind = getter(defs, otype, name)
    convert = _converter(name, op, kind)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        want = op == "HAS_PROPERTY"
        return lambda r: (get(r) is not None) is want
    if op in ("IN", "NOT_IN"):
        return _in_filter(defs[name], spec, op, get, convert)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        return _token_filter(name, spec, op)
    value = convert(spec.get("value"))
    if op == "BETWEEN":
        high = convert(spec.get("highValue"))
        return lambda r: (v := get(r)) is not None and value <= v <= high
    if op == "EQ":
        if defs[name].is_multi:
            return lambda r: value in (get(r) or "").split(";")
        return lambda r: get(r) == value
    if op == "NEQ":
        return lambda r: get(r) != value
    # One lambda per operator: searches scan up to ~100k records per request.
    if op == "LT":
        return lambda r: (v := get(r)) is not None and v < value
    if op == "LTE":
        return lambda r: (v := get(r)) is not None and v <= value
    if op == "GT":
        return lambda r: (v := get(r)) is not None and v > value
    return lambda r: (v := get(r)) is not None and v >= value


def _in_filter(pdef: PropertyDef, spec: dict[str, Any], op: str, get: Getter, convert: Callable[[Any], Any]) -> Predicate:
    values = spec.get("values")
    if not isinstance(values, list) or not values:
        raise abort(400, "VALIDATION_ERROR", f"Operator {op} on {pdef.name} needs a non-empty `values` list")
    if pdef.type == "string":
        # HubSpot's IN / NOT_IN match string properties against lower-case values only: an upper-case
        # value matches nothing (EQ, by contrast, ignores case) [crm-behaviour: HubSpot search filters and sorting].
        wanted = {str(v) for v in values}
    else:
        wanted = {convert(v) for v in values}
    inside = op == "IN"
    if pdef.is_multi:
        return lambda r: (bool(set((get(r) or "").split(";")) & wanted)) is inside
    return lambda r: (get(r) in wanted) is inside if get(r) is not None else not inside


def _token_filter(name: str, spec: dict[str, Any], op: str) -> Predicate:
    pattern = re.compile("^" + re.escape(str(spec.get("value") or "").lower()).replace(r"\*", ".*") + "$")
    contains = op == "CONTAINS_TOKEN"

    def token_match(r: Record) -> bool:
        raw = r.props.get(name, "")
        return any(pattern.match(t) for t in TOKEN_SPLIT.split(raw.lower()) if t) or bool(pattern.match(raw.lower()))

    return lambda r: token_match(r) is contains


def _all_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return lambda r: True
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda r: first(r) and second(r)
    return lambda r: all(p(r) for p in predicates)


def _any_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return lambda r: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda r: any(p(r) for p in predicates)


def _id_floor(filters: Iterable[Any]) -> int:
    """The lowest hs_object_id a filter group can match (0 when it has no lower bound on the id)."""
    floor = 0
    for spec in filters:
        if not isinstance(spec, dict) or spec.get("propertyName") != "hs_object_id":
            continue
        value = float_or_none(str(spec.get("value", "")))
        if value is None:
            continue
        op = str(spec.get("operator") or "").upper()
        if op == "GT":
            floor = max(floor, math.floor(value) + 1)
        elif op in ("GTE", "EQ", "BETWEEN"):
            floor = max(floor, math.ceil(value))
    return floor

