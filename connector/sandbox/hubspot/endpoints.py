"""The HubSpot sandbox's single-record object endpoints: list, get, create, update, archive, merge."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.objects import ASSOC_TARGET_TYPE, ASSOC_V3_NAMES, DEFAULT_PROPERTIES, LIST_LIMIT_MAX, OBJECT_ALIASES
from connector.sandbox.hubspot.records import Record, RecordStore
from connector.sandbox.hubspot.validation import ForcedFailure, validate, validation_error, write_error
from connector.sandbox.hubspot.wire import Abort, abort, as_int, error_body, flag, int_param, multi

NOT_FOUND_MESSAGE = "Object not found.  objectId are usually numeric."


def list_records(store: RecordStore, otype: str, query: Mapping[str, list[str]]) -> Reply:
    limit = int_param(query, "limit", 10)
    if limit < 1 or limit > LIST_LIMIT_MAX:
        # HubSpot caps list pages at 100 [crm-behaviour: HubSpot list pages hold at most 100 records];
        # the sandbox refuses rather than silently clamping.
        raise abort(400, "VALIDATION_ERROR", f"limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
    archived = flag(query, "archived")
    after = int_param(query, "after", 0)
    properties = multi(query, "properties") or None
    order, rows = store.order[otype], store.rows[otype]
    results: list[dict[str, Any]] = []
    next_after: int | None = None
    for index in range(bisect_left(order, after), len(rows)):
        record = rows[index]
        wanted = (record.archived and record.merged_into is None) if archived else record.live
        if not wanted:
            continue
        if len(results) == limit:
            next_after = record.id
            break
        results.append(store.render(otype, record, properties))
    body: dict[str, Any] = {"results": results}
    if next_after is not None:
        body["paging"] = {"next": {"after": str(next_after), "link": f"?after={next_after}"}}
    return Reply(200, body)


def get_record(store: RecordStore, otype: str, rid: str, query: Mapping[str, list[str]]) -> Reply:
    id_property = (query.get("idProperty") or [""])[-1]
    record = store.lookup(otype, rid, id_property, archived=flag(query, "archived"))
    if record is None:
        raise abort(404, "OBJECT_NOT_FOUND", NOT_FOUND_MESSAGE, context={"id": [rid]})
    out = store.render(otype, record, multi(query, "properties") or None)
    assoc_types = [OBJECT_ALIASES.get(a) for a in multi(query, "associations")]
    if any(assoc_types):
        out["associations"] = {}
        for to_type in filter(None, assoc_types):
            links = store.assoc.get((otype, to_type), {}).get(record.id, {})
            out["associations"][to_type] = {"results": [
                {"id": str(target), "type": ASSOC_V3_NAMES.get(type_id, f"association_{type_id}")}
                for target, kinds in links.items() for type_id, _ in kinds
            ]}
    return Reply(200, out)


def create_one(store: RecordStore, otype: str, properties: Mapping[str, Any],
               associations: Any) -> tuple[dict[str, Any] | None, Record | None]:
    """Create one record from an API input: (the per-record error, None) or (None, the new record)."""
    props = {str(k): "" if v is None else str(v) for k, v in properties.items()}
    problems = validate(store.properties[otype], store.owners, props, None)
    if problems:
        return validation_error(problems, {}), None
    if otype == "contacts" and props.get("email"):
        email = props["email"].strip().lower()
        for other in store.records["contacts"].values():
            if other.live and other.props.get("email", "").strip().lower() == email:
                # Contacts are unique by email: 409 CONFLICT naming the existing id
                # [crm-behaviour: HubSpot contacts are unique by email].
                return {"status": "error", "category": "CONFLICT",
                        "message": f"Contact already exists. Existing ID: {other.id}",
                        "context": {"id": [str(other.id)]}, "links": {}, "errors": []}, None
    rid = store.create(otype, props, "INTEGRATION")
    for assoc in associations or []:
        to = (assoc or {}).get("to") or {}
        types = (assoc or {}).get("types") or []
        target = as_int(str(to.get("id") or ""))
        type_ids = [int(t.get("associationTypeId") or 0) for t in types]
        to_type = next((ASSOC_TARGET_TYPE[t] for t in type_ids if t in ASSOC_TARGET_TYPE), None)
        if to_type and target in store.records[to_type]:
            store.link(otype, rid, to_type, target, [(type_id, None) for type_id in type_ids], [])
    return None, store.records[otype][rid]


def create(store: RecordStore, otype: str, body: Any) -> Reply:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise abort(400, "VALIDATION_ERROR", "create body needs a `properties` object")
    error, record = create_one(store, otype, body["properties"], body.get("associations"))
    if error is not None:
        status = 409 if error["category"] == "CONFLICT" else 400
        raise Abort(Reply(status, error_body(error["category"], error["message"], context=error.get("context"),
                                             errors=error.get("errors") or None)))
    assert record is not None
    return Reply(201, store.render(otype, record, [*DEFAULT_PROPERTIES[otype], *body["properties"]]))


def update(store: RecordStore, otype: str, rid: str, query: Mapping[str, list[str]], body: Any,
           forced_failure: ForcedFailure) -> Reply:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise abort(400, "VALIDATION_ERROR", "update body needs a `properties` object")
    id_property = (query.get("idProperty") or [""])[-1]
    record = store.lookup(otype, rid, id_property, archived=False)
    if record is None:
        raise abort(404, "OBJECT_NOT_FOUND", NOT_FOUND_MESSAGE, context={"id": [rid]})
    error = write_error(store.properties[otype], store.owners, record, rid, body["properties"], None, forced_failure)
    if error is not None:
        raise Abort(Reply(400, error_body(error["category"], error["message"], context=error["context"],
                                          errors=error["errors"] or None)))
    changed = store.apply(otype, record, {k: "" if v is None else str(v) for k, v in body["properties"].items()}, "INTEGRATION")
    return Reply(200, store.render(otype, record, [*DEFAULT_PROPERTIES[otype], *changed, *body["properties"]]))


def archive(store: RecordStore, otype: str, rid: str) -> Reply:
    record = store.resolve(otype, as_int(rid), follow_merges=False)
    if record is not None and record.live:
        store.archive(record)
    return Reply(204)


def merge(store: RecordStore, otype: str, body: Any) -> Reply:
    if not isinstance(body, dict):
        raise abort(400, "VALIDATION_ERROR", "merge body needs primaryObjectId and objectIdToMerge")
    primary = store.resolve(otype, as_int(str(body.get("primaryObjectId") or "")), follow_merges=False)
    merged = store.resolve(otype, as_int(str(body.get("objectIdToMerge") or "")), follow_merges=False)
    if primary is None or merged is None or not primary.live or not merged.live:
        raise abort(404, "OBJECT_NOT_FOUND", "One of the objects to merge does not exist or is archived")
    if primary.id == merged.id:
        raise abort(400, "VALIDATION_ERROR", "Cannot merge an object into itself")
    store.merge(otype, primary, merged, "INTEGRATION")
    return Reply(200, store.render(otype, primary, [*DEFAULT_PROPERTIES[otype], "hs_merged_object_ids"]))
