"""HubSpot writes: batch/update of ≤100 inputs per call, no record twice in one call, 207 errors matched to inputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from connector.adapters.base import (
    PendingWrite,
    WriteFence,
    claim_lost,
    fenced,
    unsent,
    write_in_batches,
    written,
)
from connector.adapters.hubspot.client import BATCH_SIZE, HubSpotClient
from connector.adapters.hubspot.errors import as_list, error_property, is_retryable_record_error
from connector.adapters.hubspot.fields import FieldMap
from connector.core.clock import Clock
from connector.core.errors import RateLimitedError, TransientError
from connector.core.models import Patch, WriteResult

Batch = list[PendingWrite[dict[str, str]]]


def write(client: HubSpotClient, fields: FieldMap, clock: Clock, patches: Sequence[Patch],
          fence: WriteFence | None) -> list[WriteResult]:
    """batch/update ≤100 inputs per call; one WriteResult per patch, in input order.

    A 207 carries per-record errors and never fails the other records; a record absent from both
    results and errors is reported failed-retryable. `fence`: see CrmAdapter.write.
    [crm-behaviour: HubSpot batch partial failure is HTTP 207]
    """
    for patch in patches:
        if patch.crm != "hubspot" or patch.object_type != fields.object_type:
            raise ValueError(f"hubspot {fields.object_type} adapter cannot write a {patch.crm} {patch.object_type} patch")
    return write_in_batches(
        patches,
        prepare=lambda patch: fields.to_property_values(patch.changes),
        batches=lambda pending: _unique_id_batches(pending, BATCH_SIZE),
        send=lambda batch: _send(client, fields, clock, batch, fence),
    )


def _send(client: HubSpotClient, fields: FieldMap, clock: Clock, batch: Batch, fence: WriteFence | None) -> dict[int, WriteResult]:
    object_type = fields.object_type
    going = list(batch)

    def request() -> tuple[Any, ...] | None:
        # Asked after the rate-limit wait, right before the request leaves.
        nonlocal going
        going = fenced(fence, batch, clock.now())
        if not going:
            return None
        # The request body as plain JSON-ready dicts (the SDK sends dicts as they are): building SDK models
        # makes a Configuration per input, which cost more than the rest of the write (issue 18 profile).
        inputs = [{"id": item.patch.record_id, "properties": item.payload, "objectWriteTraceId": str(item.index)} for item in going]
        return (object_type, {"inputs": inputs})

    # A per-record problem is a 207 entry [crm-behaviour: HubSpot batch partial failure is HTTP 207];
    # an error status here concerns the whole request (malformed, auth, quota) and propagates: the
    # outbox keeps the patches. Only a 429 is
    # retried here (HubSpot refused it unapplied); a 5xx or a lost connection may have been applied,
    # and a person may change the record right after: those patches go back to the outbox, whose
    # next claim re-reads the records before sending anything again.
    try:
        response = client.call(f"{object_type}.batch_update", "write", client.apis.objects_batch.update,
                               build=request, retry_on=RateLimitedError)
    except RateLimitedError:
        raise
    except TransientError as exc:
        return unsent(batch, going, exc)
    return _results(fields, batch, {item.index for item in going}, response.body)


def _results(fields: FieldMap, batch: Batch, sent: set[int], body: Mapping[str, Any]) -> dict[int, WriteResult]:
    ok_ids = {str(r.get("id")) for r in body.get("results") or []}
    errors = _errors_by_input(body.get("errors") or [], batch)
    out: dict[int, WriteResult] = {}
    for item in batch:
        error = errors.get(item.index)
        if item.index not in sent:
            out[item.index] = claim_lost(item.patch)
        elif error is not None:
            category = str(error.get("category") or "ERROR")
            out[item.index] = _failed(fields, item.patch, category, str(error.get("message") or category), error_property(error),
                                      retryable=is_retryable_record_error(error))
        elif item.patch.record_id in ok_ids:
            out[item.index] = written(item.patch)
        else:
            out[item.index] = _failed(fields, item.patch, "MISSING_RESULT", "HubSpot returned neither a result nor an error for this record",
                                      None, retryable=True)
    return out


def _failed(fields: FieldMap, patch: Patch, code: str, message: str, prop: str | None, *, retryable: bool) -> WriteResult:
    return WriteResult(
        "hubspot", fields.object_type, patch.record_id, ok=False, error_code=code,
        message=message[:500], field=fields.attribute_for(prop), retryable=retryable,
    )


def _errors_by_input(errors: list[dict[str, Any]], batch: Batch) -> dict[int, dict[str, Any]]:
    """Match each 207 error to its input: by objectWriteTraceId when echoed, else by the record ids in its context."""
    by_id: dict[str, list[int]] = {}
    for item in batch:
        by_id.setdefault(item.patch.record_id, []).append(item.index)
    indexes = {item.index for item in batch}
    matched: dict[int, dict[str, Any]] = {}
    for error in errors:
        context = error.get("context") or {}
        traces = [str(t) for t in as_list(error.get("objectWriteTraceId") or context.get("objectWriteTraceId"))]
        hits = [int(t) for t in traces if t.isdigit() and int(t) in indexes]
        if not hits:
            ids = [str(i) for key in ("id", "ids") for i in as_list(context.get(key))]
            hits = [index for record_id in ids for index in by_id.get(record_id, [])]
        for index in hits:
            matched.setdefault(index, error)
    return matched


def _unique_id_batches(items: Batch, size: int) -> Iterator[Batch]:
    """Batches of ≤size inputs with no record id twice (HubSpot rejects duplicate ids in one batch)."""
    batch: Batch = []
    ids: set[str] = set()
    for item in items:
        if len(batch) == size or item.patch.record_id in ids:
            yield batch
            batch, ids = [], set()
        batch.append(item)
        ids.add(item.patch.record_id)
    if batch:
        yield batch
