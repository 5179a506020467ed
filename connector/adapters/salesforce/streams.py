"""Salesforce streams: changed leads (queryAll on SystemModstamp, Id), every lead (keyset on Id), re-reads by id.

Cursors are opaque JSON strings, safe to store after the page that carries them:

- `fetch_changed`: one queryAll stream over Lead ordered by `SystemModstamp, Id`
  [crm-behaviour: Salesforce incremental polling on SystemModstamp], so soft-deleted and
  merged-away rows (IsDeleted, MasterRecordId) arrive in order with the changes and become
  FetchPage.deleted_ids / merged. Cursor `{"v":1,"since","after","started"}`: `since`
  is the inclusive watermark of the scan; mid-scan pages carry `after` = the (SystemModstamp, Id)
  of their last row plus the scan's start time, so a resume continues with the tie-break
  `SystemModstamp > ts OR (SystemModstamp = ts AND Id > id)` and loses no ties; the last page
  carries the next watermark: scan start − lookback_seconds (late commits, see above), never
  lower than the old one. Pages are followed with nextRecordsUrl (`query` + `query_more`).
- `fetch_all` (backfill): query over Lead keyset on Id; cursor `{"v":1,"after_id"}`, `{"v":1,"done":true}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simple_salesforce.api import Salesforce

from connector.adapters.base import CursorCodec, chunks
from connector.adapters.salesforce import soql
from connector.adapters.salesforce.client import SalesforceClient
from connector.adapters.salesforce.fields import OBJECT, STAMP_FIELD, parse_datetime, select_fields
from connector.config import SalesforceSettings
from connector.core.clock import Clock
from connector.core.models import FetchPage, Lead, Rejection

CURSORS = CursorCodec("salesforce", "Salesforce", tags_stream=True)
CURSOR_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# sObject Collections retrieve takes ≤2,000 ids per call (POST) [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids].
COLLECTION_RETRIEVE_MAX = 2000


@dataclass(frozen=True)
class SalesforceStreams:
    """What every read needs: the client, the settings, the clock and the adapter's normalize."""

    client: SalesforceClient
    settings: SalesforceSettings
    clock: Clock
    normalize: Callable[[Mapping[str, Any]], Lead]

    def select_fields(self) -> list[str]:
        return select_fields(self.client.lead_fields(), self.settings)

    def page(self, records: list[dict[str, Any]], cursor: str) -> FetchPage:
        leads: list[Lead] = []
        deleted: list[str] = []
        merged: dict[str, str] = {}
        rejected: list[Rejection] = []
        for record in records:
            if record.get("IsDeleted"):
                # A merge soft-deletes the loser and points it at the survivor
                # [crm-behaviour: Salesforce queryAll returns deleted and merged rows].
                if record.get("MasterRecordId"):
                    merged[str(record["Id"])] = str(record["MasterRecordId"])
                else:
                    deleted.append(str(record["Id"]))
                continue
            try:
                leads.append(self.normalize(record))
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(Rejection(str(record.get("Id", "")), None, "UNREADABLE_RECORD", f"{type(exc).__name__}: {exc}"))
        return FetchPage(tuple(leads), cursor, tuple(deleted), merged, tuple(rejected))

    def where(self, *conditions: str | None, include_deleted: bool, include_converted: bool = False) -> str | None:
        parts = [c for c in conditions if c]
        lead_filter = self.settings.lead_filter.strip()
        if lead_filter:
            # The filter is the admin's own SOQL (trusted config). Deleted rows must pass it regardless, and
            # so must leads converted since the last sync: a routed lead's rep has its open load released
            # and the conversion credited, though the default filter is IsConverted = false.
            extra = (" OR IsDeleted = true" if include_deleted else "") + (" OR IsConverted = true" if include_converted else "")
            parts.append(f"(({lead_filter}){extra})" if extra else f"({lead_filter})")
        return " AND ".join(parts) or None

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads changed (and deleted / merged) since the cursor; see the module docstring for the cursor."""
        stream = "fetch_changed"
        state = CURSORS.decode(cursor, stream)
        since = _cursor_time(state.get("since"), stream)
        after = state.get("after")
        now = self.clock.now()
        if since is not None and since > now and not after:
            return  # a watermark in the future: nothing can have changed yet, and no call is spent
        started = _cursor_time(state.get("started"), stream) or now
        # A first scan (no watermark yet) leaves out the org's historic conversions: only later ones matter.
        where = self.where(_position(since, after, stream), include_deleted=True, include_converted=since is not None)
        query = soql.select(self.select_fields(), OBJECT, where, (STAMP_FIELD, "Id"))
        next_since = started - timedelta(seconds=self.settings.lookback_seconds)
        if since is not None:
            next_since = max(since, next_since)
        for records, done in self.client.stream(query, include_deleted=True):
            if done:
                state_out: dict[str, Any] = {"since": _fmt_time(next_since)}
            else:
                last = records[-1]
                stamp = parse_datetime(last[STAMP_FIELD])
                assert stamp is not None
                state_out = {"since": _fmt_time(since) if since else None,
                             "after": [_fmt_time(stamp), str(last["Id"])], "started": _fmt_time(started)}
            yield self.page(records, CURSORS.encode(stream, state_out))

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Nothing: deletions and merges already arrive through queryAll in fetch_changed (IsDeleted, MasterRecordId)."""
        return iter(())

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every lead matching lead_filter (backfill), keyset on Id, resumable from any page's cursor."""
        stream = "fetch_all"
        state = CURSORS.decode(cursor, stream)
        if state.get("done"):
            return
        after_id = state.get("after_id")
        position = f"Id > {soql.quote(str(after_id))}" if after_id else None
        query = soql.select(self.select_fields(), OBJECT, self.where(position, include_deleted=False), ("Id",))
        for records, done in self.client.stream(query, include_deleted=False):
            out = {"done": True} if done else {"after_id": str(records[-1]["Id"])}
            yield self.page(records, CURSORS.encode(stream, out))

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read leads with sObject Collections retrieve (≤2,000 ids per call); deleted / unknown ids are left out."""
        unique = list(dict.fromkeys(str(i) for i in ids if i))
        if not unique:
            return []
        fields = self.select_fields()
        leads: list[Lead] = []
        for chunk in chunks(unique, COLLECTION_RETRIEVE_MAX):
            body = {"ids": chunk, "fields": fields}

            def retrieve(sf: Salesforce) -> Any:  # called at once (and on retries) within this iteration
                return sf.restful(f"composite/sobjects/{OBJECT}", method="POST", json=body)  # noqa: B023

            found = self.client.call("composite.sobjects.retrieve", "read", retrieve)
            for record in found or []:
                if record:
                    leads.append(self.normalize(dict(record)))
        return leads


def _position(since: datetime | None, after: Any, stream: str) -> str | None:
    """Where a scan resumes: after the (SystemModstamp, Id) of the last handled row, else from the watermark."""
    if after:
        after_ts = _cursor_time(after[0], stream)
        assert after_ts is not None
        ts = soql.datetime_literal(after_ts)
        return f"({STAMP_FIELD} > {ts} OR ({STAMP_FIELD} = {ts} AND Id > {soql.quote(str(after[1]))}))"
    if since is not None:
        return f"{STAMP_FIELD} >= {soql.datetime_literal(since)}"
    return None


def _fmt_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(CURSOR_TIME_FORMAT)


def _cursor_time(value: object, stream: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), CURSOR_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise CURSORS.problem(stream, "stored cursor has an unreadable time; reset it") from None
