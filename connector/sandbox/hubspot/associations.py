"""The HubSpot sandbox's v4 associations API: batch read and per-record listing of linked records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.batch import batch_reply, inputs_of
from connector.sandbox.hubspot.objects import ASSOCIATION_BATCH_MAX, OBJECT_ALIASES, SINGULAR
from connector.sandbox.hubspot.records import RecordStore
from connector.sandbox.hubspot.wire import abort, as_int


def _types(store: RecordStore, from_raw: str, to_raw: str) -> tuple[str, str]:
    from_type, to_type = OBJECT_ALIASES.get(from_raw), OBJECT_ALIASES.get(to_raw)
    if from_type is None or to_type is None or (from_type, to_type) not in store.assoc:
        raise abort(400, "VALIDATION_ERROR", f"Unsupported association pair {from_raw} → {to_raw}")
    return from_type, to_type


def _targets(store: RecordStore, from_type: str, to_type: str, rid: int) -> list[dict[str, Any]]:
    links = store.assoc[(from_type, to_type)].get(rid, {})
    targets = store.records[to_type]
    return [
        {"toObjectId": target, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label} for type_id, label in kinds]}
        for target, kinds in links.items() if target in targets and targets[target].live
    ]


def batch_read(store: RecordStore, from_raw: str, to_raw: str, body: Any) -> Reply:
    """POST /crm/v4/associations/{from}/{to}/batch/read."""
    started = store.now_ms()
    from_type, to_type = _types(store, from_raw, to_raw)
    results, errors = [], []
    for item in inputs_of(body, "batch/read", ASSOCIATION_BATCH_MAX):
        key = str((item or {}).get("id") or "")
        record = store.resolve(from_type, as_int(key), follow_merges=False)
        targets = _targets(store, from_type, to_type, record.id) if record is not None and record.live else []
        if targets:
            results.append({"from": {"id": key}, "to": targets})
        else:
            errors.append({
                "status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {to_type} is associated with {SINGULAR[from_type].lower()} {key}.",
                "context": {"fromObjectId": [key]}, "links": {}, "errors": [],
            })
    return batch_reply(store, started, results, errors, 200)


def list_associations(store: RecordStore, from_raw: str, rid: str, to_raw: str, query: Mapping[str, list[str]]) -> Reply:
    """GET /crm/v4/objects/{from}/{id}/associations/{to}."""
    from_type, to_type = _types(store, from_raw, to_raw)
    record = store.resolve(from_type, as_int(rid), follow_merges=False)
    if record is None or not record.live:
        raise abort(404, "OBJECT_NOT_FOUND", f"{SINGULAR[from_type].title()} {rid} does not exist")
    return Reply(200, {"results": _targets(store, from_type, to_type, record.id)})
