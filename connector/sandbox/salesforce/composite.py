"""The Salesforce sandbox's writes: sObject Collections update / retrieve and single-record PATCH, with per-record errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.salesforce.org import Org, Row
from connector.sandbox.salesforce.schema import (
    MAX_COLLECTION_RETRIEVE,
    MAX_COLLECTION_UPDATE,
    NUMERIC,
    FieldDef,
    render_row,
    sf_errors,
)

Failure = tuple[str, str, list[str]]  # (status code, message, fields)


@dataclass
class WritePolicy:
    """The org's write-time behaviour and fault switches, read per request from the sandbox."""

    forced_failure: Callable[[str], Failure | None]  # a configured failure for a record id
    is_locking_row: Callable[[], bool]  # rolls the UNABLE_TO_LOCK_ROW switch
    assignment_rule_active: bool


def collections_update(org: Org, body: Mapping[str, Any], headers: Mapping[str, str], user_id: str, policy: WritePolicy) -> Reply:
    """PATCH /composite/sobjects: up to 200 records, allOrNone=false, one result per record in input order."""
    records = body.get("records") or []
    if len(records) > MAX_COLLECTION_UPDATE:
        return Reply(400, sf_errors("EXCEEDED_ID_LIMIT",
                                    f"record limit reached. cannot submit more than {MAX_COLLECTION_UPDATE} records into this call"))
    if body.get("allOrNone"):
        return Reply(400, sf_errors("INVALID_FIELD", "the sandbox implements allOrNone=false only"))
    return Reply(200, update_records(org, records, headers, user_id, policy))


def update_records(org: Org, records: list[Mapping[str, Any]], headers: Mapping[str, str], user_id: str,
                   policy: WritePolicy) -> list[dict[str, Any]]:
    auto_assign = headers.get("sforce-auto-assign", "TRUE").strip().upper() not in ("FALSE", "0")
    client = None
    m = re.search(r"client=([^,;\s]+)", headers.get("sforce-call-options", ""))
    if m:
        client = m.group(1)
    return [_update_one(org, rec, auto_assign, client, user_id, policy) for rec in records]


def _failure(rid: str, code: str, message: str, fields: Iterable[str] = ()) -> dict[str, Any]:
    return {"id": rid, "success": False, "errors": [{"statusCode": code, "message": message, "fields": list(fields)}]}


def _update_one(org: Org, rec: Mapping[str, Any], auto_assign: bool, client: str | None, user_id: str,
                policy: WritePolicy) -> dict[str, Any]:
    rid = str(rec.get("id") or rec.get("Id") or "")
    sobject = (rec.get("attributes") or {}).get("type")
    if sobject != "Lead":
        return _failure(rid, "INVALID_TYPE", f"the sandbox updates Lead records only, got {sobject!r}")
    row = org.tables["Lead"].get(rid)
    if row is None:
        return _failure(rid, "INVALID_ID_FIELD", f"invalid record id: {rid}", ["Id"])
    if row["IsDeleted"]:
        return _failure(rid, "ENTITY_IS_DELETED", "entity is deleted")
    if row["IsConverted"]:
        return _failure(rid, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
    forced = policy.forced_failure(rid)
    if forced is not None:
        code, message, fields = forced
        return _failure(rid, code, message, fields)
    if policy.is_locking_row():
        return _failure(rid, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
    changes = {k: v for k, v in rec.items() if k not in ("attributes", "id", "Id")}
    for name, value in changes.items():
        problem = _field_problem(org, org.schemas["Lead"].get(name), name, value)
        if problem is not None:
            return _failure(rid, *problem)
    before = dict(row)
    row.update(changes)
    if auto_assign and policy.assignment_rule_active:
        # The org's active lead assignment rule runs on API updates unless Sforce-Auto-Assign: FALSE
        # [crm-behaviour: Salesforce assignment rules override OwnerId].
        row["OwnerId"] = org.default_queue_id
    org.touch(row, user_id=user_id)
    org.write_clients[rid] = client
    org.emit_change("UPDATE", rid, before, client=client, api=True, user_id=user_id)
    return {"id": rid, "success": True, "errors": []}


def _field_problem(org: Org, fdef: FieldDef | None, name: str, value: Any) -> Failure | None:
    """The per-record error for setting one Lead field to `value`, or None when Salesforce accepts it."""
    if fdef is None:
        return "INVALID_FIELD", f"No such column '{name}' on sobject of type Lead", [name]
    if not fdef.updateable:
        return "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}.", [name]
    if fdef.type == "picklist" and fdef.restricted:
        allowed = org.picklist_values(fdef)
        if value is None or value not in allowed:
            return "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{fdef.name}: bad value for restricted picklist field: {value}", [name]
    if fdef.type in NUMERIC and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value}", [name]
    if name == "OwnerId":
        owner: Row | None = org.tables["User"].get(str(value)) or org.tables["Group"].get(str(value))
        if owner is None:
            return "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", ["OwnerId"]
        if owner.get("IsActive") is False:
            return "INACTIVE_OWNER_OR_USER", "operation performed with inactive user", []
    return None


def collections_retrieve(org: Org, sobject: str, body: Mapping[str, Any], version: str) -> Reply:
    """POST /composite/sobjects/{sobject}: up to 2,000 ids, null for a missing or deleted one."""
    schema = org.schemas.get(sobject)
    if schema is None:
        return Reply(404, sf_errors("NOT_FOUND", f"The requested resource does not exist: {sobject}"))
    ids, fields = list(body.get("ids") or []), list(body.get("fields") or [])
    if len(ids) > MAX_COLLECTION_RETRIEVE:
        return Reply(400, sf_errors("EXCEEDED_ID_LIMIT", f"cannot retrieve more than {MAX_COLLECTION_RETRIEVE} records"))
    unknown = [f for f in fields if f not in schema]
    if unknown or not fields:
        return Reply(400, sf_errors("INVALID_FIELD", f"No such column '{unknown[0] if unknown else ''}' on entity '{sobject}'."))
    out: list[dict[str, Any] | None] = []
    for rid in ids:
        row = org.tables[sobject].get(rid)
        out.append(None if row is None or row.get("IsDeleted") else render_row(sobject, row, fields, version))
    return Reply(200, out)
