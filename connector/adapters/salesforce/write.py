"""Salesforce writes: sObject Collections PATCH of ≤200 records per call, allOrNone=false; locked rows sent again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connector.adapters.base import (
    CallPolicy,
    PendingWrite,
    WriteFence,
    chunks,
    claim_lost,
    fenced,
    unsent,
    write_in_batches,
    written,
)
from connector.adapters.salesforce.client import SalesforceClient
from connector.adapters.salesforce.errors import LOCK_CODE, classify
from connector.adapters.salesforce.fields import CRM, OBJECT, record_for
from connector.config import SalesforceSettings
from connector.core.clock import Clock
from connector.core.errors import CrmApiError, RateLimitedError, TransientError
from connector.core.models import Patch, WriteResult

# sObject Collections: ≤200 records per update call [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids].
COLLECTION_UPDATE_MAX = 200
ENDPOINT = "composite.sobjects.update"

Batch = list[PendingWrite[dict[str, Any]]]


def write(client: SalesforceClient, settings: SalesforceSettings, policy: CallPolicy, clock: Clock,
          patches: Sequence[Patch], fence: WriteFence | None) -> list[WriteResult]:
    """sObject Collections PATCH, ≤200 records per call, allOrNone=false; one WriteResult per patch, in order.

    `fence`: see CrmAdapter.write (Salesforce has no per-second limiter, so it is asked right before each attempt).

    Records failing with UNABLE_TO_LOCK_ROW are sent again (alone) with backoff, up to
    max_attempts; REQUEST_LIMIT_EXCEEDED raises BudgetExhaustedError (nothing after it is sent).
    """
    return write_in_batches(
        patches,
        prepare=lambda patch: record_for(patch, client.lead_fields(), settings),
        batches=lambda pending: chunks(pending, COLLECTION_UPDATE_MAX),
        send=lambda batch: _send(client, policy, clock, batch, fence),
    )


def _send(client: SalesforceClient, policy: CallPolicy, clock: Clock, batch: Batch, fence: WriteFence | None) -> dict[int, WriteResult]:
    results: dict[int, WriteResult] = {}
    todo = list(batch)

    def attempt() -> None:
        nonlocal todo
        going = fenced(fence, todo, clock.now())
        kept = {item.index for item in going}
        results.update({item.index: claim_lost(item.patch) for item in todo if item.index not in kept})
        todo = going
        if not todo:
            return
        body = {"allOrNone": False, "records": [item.payload for item in todo]}
        try:
            reply = client.request(ENDPOINT, "write", lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json=body, headers=dict(client.write_headers)))
        except RateLimitedError:
            raise  # refused unapplied: retried here
        except TransientError as exc:
            # A 5xx or a lost connection may have been applied, and a person may change the record right
            # after: no blind resend. The patches go back to the outbox, whose next claim re-reads the leads.
            results.update(unsent(todo, todo, exc))
            todo = []
            return
        if not isinstance(reply, list) or len(reply) != len(todo):
            raise CrmApiError("answer does not hold one result per record", crm=CRM, endpoint=ENDPOINT)
        outcomes = {item.index: _result(item.patch, answer) for item, answer in zip(todo, reply, strict=True)}
        results.update(outcomes)
        todo = [item for item in todo if outcomes[item.index].retryable]
        if todo:
            raise TransientError(f"salesforce {ENDPOINT}: {len(todo)} record(s) {LOCK_CODE}", crm=CRM, endpoint=ENDPOINT, status=200)

    try:
        policy.retried(attempt)
    except TransientError:
        # Records still locked after the last attempt keep their retryable result; a call that never
        # got an answer for some record is a failed call, not a record outcome.
        if any(item.index not in results for item in todo):
            raise
    return results


def _result(patch: Patch, item: Mapping[str, Any]) -> WriteResult:
    if item.get("success"):
        return written(patch)
    errors = item.get("errors") or [{}]
    first = errors[0]
    code = str(first.get("statusCode") or "UNKNOWN_EXCEPTION")
    fields = first.get("fields") or []
    kind = classify(200, code)
    return WriteResult(
        CRM, OBJECT, patch.record_id, ok=False, error_code=code, message=str(first.get("message") or "")[:300],
        field=str(fields[0]) if fields else None, retryable=kind is TransientError,
    )
