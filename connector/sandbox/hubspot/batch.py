"""The HubSpot sandbox's batch object endpoints: read, update, create, archive, with 207 partial failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.endpoints import create_one
from connector.sandbox.hubspot.objects import BATCH_MAX, DEFAULT_PROPERTIES, SINGULAR
from connector.sandbox.hubspot.records import RecordStore
from connector.sandbox.hubspot.validation import ForcedFailure, write_error
from connector.sandbox.hubspot.wire import abort, as_int, flag, iso


def inputs_of(body: Any, what: str, most: int = BATCH_MAX) -> list[Any]:
    """The `inputs` list of a batch body (400 when missing or longer than `most`)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise abort(400, "VALIDATION_ERROR", f"{what} body needs an `inputs` list")
    inputs: list[Any] = body["inputs"]
    if len(inputs) > most:
        raise abort(400, "VALIDATION_ERROR", f"Too many inputs: {len(inputs)} > {most}" + (" (batch limit)" if most == BATCH_MAX else ""))
    return inputs


def batch_reply(store: RecordStore, started: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok_status: int) -> Reply:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                            "completedAt": iso(store.now_ms())}
    if errors:
        # Partial failure is HTTP 207 with errors[] and numErrors [crm-behaviour: HubSpot batch partial failure is HTTP 207].
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return Reply(207, body)
    return Reply(ok_status, body)


def _not_found_error(otype: str, ids: list[str]) -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {SINGULAR[otype]} objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": ids}, "links": {}, "errors": []}


def batch_read(store: RecordStore, otype: str, query: Mapping[str, list[str]], body: Any) -> Reply:
    started = store.now_ms()
    inputs = inputs_of(body, "batch/read")
    id_property = str(body.get("idProperty") or "")
    properties = body.get("properties") or None
    archived = flag(query, "archived")
    results: list[dict[str, Any]] = []
    seen: set[int] = set()
    missing: list[str] = []
    for item in inputs:
        key = str((item or {}).get("id") or "")
        record = store.lookup(otype, key, id_property, archived=archived) if key else None
        if record is None:
            missing.append(key)
        elif record.id not in seen:
            seen.add(record.id)
            results.append(store.render(otype, record, properties))
    errors = [_not_found_error(otype, missing)] if missing else []
    return batch_reply(store, started, results, errors, 200)


def batch_update(store: RecordStore, otype: str, body: Any, forced_failure: ForcedFailure) -> Reply:
    started = store.now_ms()
    inputs = inputs_of(body, "batch/update")
    id_property = str(body.get("idProperty") or "")
    ids = [str((item or {}).get("id") or "") for item in inputs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise abort(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    missing: list[str] = []
    for item, key in zip(inputs, ids, strict=True):
        properties = (item or {}).get("properties")
        trace = (item or {}).get("objectWriteTraceId")
        if not isinstance(properties, dict):
            raise abort(400, "VALIDATION_ERROR", f"Input {key!r} has no `properties` object")
        record = store.lookup(otype, key, id_property, archived=False) if key else None
        if record is None:
            missing.append(key)
            continue
        error = write_error(store.properties[otype], store.owners, record, key, {str(k): v for k, v in properties.items()},
                            trace, forced_failure)
        if error is not None:
            errors.append(error)
            continue
        changed = store.apply(otype, record, {k: "" if v is None else str(v) for k, v in properties.items()}, "INTEGRATION")
        rendered = store.render(otype, record, [*DEFAULT_PROPERTIES[otype], *changed, *properties])
        if trace is not None:
            rendered["objectWriteTraceId"] = str(trace)
        results.append(rendered)
    if missing:
        errors.append(_not_found_error(otype, missing))
    return batch_reply(store, started, results, errors, 200)


def batch_create(store: RecordStore, otype: str, body: Any) -> Reply:
    started = store.now_ms()
    inputs = inputs_of(body, "batch/create")
    results, errors = [], []
    for item in inputs:
        properties = (item or {}).get("properties")
        if not isinstance(properties, dict):
            raise abort(400, "VALIDATION_ERROR", "Every input needs a `properties` object")
        error, record = create_one(store, otype, properties, (item or {}).get("associations"))
        if error is not None:
            errors.append(error)
        elif record is not None:
            results.append(store.render(otype, record, [*DEFAULT_PROPERTIES[otype], *properties]))
    return batch_reply(store, started, results, errors, 201)


def batch_archive(store: RecordStore, otype: str, body: Any) -> Reply:
    for item in inputs_of(body, "batch/archive"):
        record = store.resolve(otype, as_int(str((item or {}).get("id") or "")), follow_merges=False)
        if record is not None and record.live:
            store.archive(record)
    return Reply(204)
