"""HubSpot streams: changed leads (search keyset), every lead (list GET), archived ids, re-reads by id; and pages.

All cursors are opaque JSON strings, safe to store after the page that carries them:

- `fetch_changed`: search API, `<modified> GTE watermark`, keyset on `hs_object_id`
  [crm-behaviour: HubSpot incremental polling by keyset].
  Cursor `{"v":1,"watermark_ms","scan_started_ms","last_id"}`. Mid-scan pages carry the same
  watermark and scan start with the last id handled; the last page carries the next watermark
  (scan start − safety lag, never lower than the old one) and last_id 0.
- `fetch_all` (backfill): list GET, 100 per page; cursor `{"v":1,"after"}`, `{"v":1,"done":true}` at the end.
- `fetch_archived`: deletes are invisible to search (archiving does not bump the modified date,
  [crm-behaviour: HubSpot archiving does not bump the modified date]), so archived records are
  swept with `GET …?archived=true`; every sweep pages the whole archived list (its `after` is id-ordered, so a resume point would miss newly archived
  low ids) and reports, as FetchPage.deleted_ids, those archived since the previous sweep began
  (minus the safety lag). Cursor `{"v":1,"since_ms","sweep_started_ms","after"}`.
- Merges: a surviving record lists the ids merged into it in `hs_merged_object_ids`
  [crm-behaviour: HubSpot merges: the old id reads as the survivor]; every fetched page reports
  them as FetchPage.merged {old: surviving}.
  `fetch_by_ids` returns, for an id that now resolves to another record, a marker
  `Lead(id=old, merged_into=surviving)` next to the surviving lead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot.crm.objects.models import Filter, FilterGroup, PublicObjectSearchRequest

from connector.adapters.base import CursorCodec
from connector.adapters.hubspot.client import LIST_PAGE_SIZE, HubSpotClient, id_order, next_after
from connector.adapters.hubspot.fields import (
    MERGED_IDS_PROPERTY,
    OBJECT_ID_PROPERTY,
    FieldMap,
    modified_property,
    parse_datetime,
    split_ids,
    to_epoch_ms,
)
from connector.config import HubSpotSettings
from connector.core.clock import Clock
from connector.core.models import FetchPage, Lead, Rejection

log = logging.getLogger("connector.adapters.hubspot")

CURSORS = CursorCodec("hubspot", "HubSpot")
# `properties` goes into the GET URL as `&properties=NAME` per name; stay well under the ~2,000
# characters proxies and HubSpot accept (dlt chunks at 2,000)
# [crm-behaviour: Pitfall: too many properties in a GET URL].
URL_PROPERTIES_BUDGET = 1_500


@dataclass(frozen=True)
class HubSpotStreams:
    """What every read needs: the client, the field map, the settings, the clock and the adapter's normalize."""

    client: HubSpotClient
    fields: FieldMap
    settings: HubSpotSettings
    clock: Clock
    normalize: Callable[[Mapping[str, Any]], Lead]

    @property
    def object_type(self) -> str:
        return self.fields.object_type

    def page(self, records: list[dict[str, Any]], cursor: str) -> FetchPage:
        """Records of the configured object → a FetchPage (merges reported, unparseable records rejected)."""
        if self.object_type != "contacts":
            records = self.with_contacts(records)
        leads: list[Lead] = []
        rejected: list[Rejection] = []
        merged: dict[str, str] = {}
        for record in records:
            try:
                lead = self.normalize(record)
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append(Rejection(str(record.get("id", "?")), None, "UNREADABLE", f"record could not be read ({type(exc).__name__})"))
                continue
            leads.append(lead)
            for old in split_ids((record.get("properties") or {}).get(MERGED_IDS_PROPERTY)):
                if old != lead.id:
                    merged[old] = lead.id
        return FetchPage(leads=tuple(leads), cursor=cursor, merged=merged, rejected=tuple(rejected))

    def with_contacts(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Leads objects carry no person fields: merge in each lead's associated contact (v4 batch read)."""
        contact_of: dict[str, str] = {}
        for row in self.client.associations(self.object_type, "contacts", [str(r["id"]) for r in records]):
            targets = row.get("to") or []
            if targets:
                contact_of[str((row.get("from") or {}).get("id"))] = str(targets[0].get("toObjectId"))
        contacts = {
            str(c["id"]): c.get("properties") or {}
            for c in self.client.batch_read("contacts", sorted(set(contact_of.values())), self.fields.contact_properties())
        }
        merged = []
        for record in records:
            contact_props = contacts.get(contact_of.get(str(record["id"]), ""), {})
            own = {k: v for k, v in (record.get("properties") or {}).items() if v is not None}
            merged.append({**record, "properties": {**contact_props, **own}})
        return merged

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads modified since the cursor's watermark, keyset-paged on hs_object_id.

        [crm-behaviour: HubSpot incremental polling by keyset]
        """
        state = CURSORS.decode(cursor, "fetch_changed")
        now_ms = to_epoch_ms(self.clock.now())
        watermark = int(state.get("watermark_ms", 0))
        if watermark > now_ms:
            # A cursor from the future (clock skew, a copied state store): nothing can have changed since.
            log.warning("hubspot %s: cursor watermark is in the future; nothing fetched", self.object_type)
            return
        last_id = int(state.get("last_id", 0))
        scan_started = int(state["scan_started_ms"]) if last_id and "scan_started_ms" in state else now_ms
        while True:
            # Every page restarts `after` and advances the keyset instead: it never meets the 10,000
            # cap even when >10k records share one timestamp
            # [crm-behaviour: Pitfall: HubSpot search past 10,000 results] [crm-behaviour: Pitfall: many records share one modified time],
            # and a record archived
            # mid-scan cannot shift an offset and make us skip a neighbour.
            response = self.client.search(self.object_type, self._changed_request(watermark, last_id))
            results = response.body.get("results") or []
            has_more = bool(next_after(response.body)) and bool(results)
            if results:
                last_id = max(int(r["id"]) for r in results)
            if has_more:
                next_state = {"watermark_ms": watermark, "scan_started_ms": scan_started, "last_id": last_id}
            else:
                # Next scan starts from this scan's start minus the safety lag (index lag; records
                # modified while we scanned), never from the newest timestamp seen
                # [crm-behaviour: Pitfall: watermark from the newest record seen].
                next_watermark = max(watermark, scan_started - self.settings.safety_lag_seconds * 1000)
                next_state = {"watermark_ms": next_watermark, "last_id": 0}
            yield self.page(results, CURSORS.encode("fetch_changed", next_state))
            if not has_more:
                return

    def _changed_request(self, watermark: int, last_id: int) -> PublicObjectSearchRequest:
        filters = [Filter(property_name=modified_property(self.object_type), operator="GTE", value=str(watermark))]
        if last_id:
            filters.append(Filter(property_name=OBJECT_ID_PROPERTY, operator="GT", value=str(last_id)))
        return PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=filters)],
            sorts=id_order(),
            properties=self.fields.record_properties(),
            limit=self.settings.search_page_size,
        )

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every (unarchived) lead by list GET, one page of 100 at a time; resumable by the page cursor."""
        state = CURSORS.decode(cursor, "fetch_all")
        if state.get("done"):
            return
        after: str | None = state.get("after")
        properties = self.fields.record_properties()
        fits_url = _url_cost(properties) <= URL_PROPERTIES_BUDGET
        while True:
            response = self.client.call(
                f"{self.object_type}.list", "read", self.client.apis.objects_basic.get_page, self.object_type,
                limit=LIST_PAGE_SIZE, after=after, archived=False,
                properties=properties if fits_url else [OBJECT_ID_PROPERTY],
            )
            results = response.body.get("results") or []
            if results and not fits_url:
                # Too many properties for a URL: re-read the page by id, properties in the body
                # [crm-behaviour: Pitfall: too many properties in a GET URL].
                results = self.client.batch_read(self.object_type, [str(r["id"]) for r in results], properties)
            after = next_after(response.body)
            yield self.page(results, CURSORS.encode("fetch_all", {"after": after} if after else {"done": True}))
            if not after:
                return

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Ids archived (deleted) since the previous sweep, from `GET …?archived=true` list pages."""
        state = CURSORS.decode(cursor, "fetch_archived")
        now_ms = to_epoch_ms(self.clock.now())
        since = state.get("since_ms")
        after: str | None = state.get("after")
        sweep_started = int(state["sweep_started_ms"]) if after and "sweep_started_ms" in state else now_ms
        while True:
            response = self.client.call(
                f"{self.object_type}.list_archived", "read", self.client.apis.objects_basic.get_page, self.object_type,
                limit=LIST_PAGE_SIZE, after=after, archived=True, properties=[OBJECT_ID_PROPERTY],
            )
            deleted = tuple(
                str(r["id"]) for r in response.body.get("results") or []
                if since is None or (archived := _archived_ms(r)) is None or archived >= int(since)
            )
            after = next_after(response.body)
            if after:
                next_state = {"since_ms": since, "sweep_started_ms": sweep_started, "after": after}
            else:
                lagged = sweep_started - self.settings.safety_lag_seconds * 1000
                next_state = {"since_ms": lagged if since is None else max(int(since), lagged), "after": None}
            yield FetchPage(leads=(), cursor=CURSORS.encode("fetch_archived", next_state), deleted_ids=deleted)
            if not after:
                return

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read by id (batch/read, ≤100 per call); missing or archived ids are left out.

        An id merged into another record comes back as a marker Lead(id=old, merged_into=surviving)
        next to the surviving lead (the id you ask for may not be the id you get)
        [crm-behaviour: HubSpot merges: the old id reads as the survivor].
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        page = self.page(self.client.batch_read(self.object_type, wanted, self.fields.record_properties()), "")
        leads: dict[str, Lead] = {}
        for lead in page.leads:
            leads.setdefault(lead.id, lead)
        asked = set(wanted)
        markers = [
            Lead(crm="hubspot", object_type=self.object_type, id=old, merged_into=new)
            for old, new in page.merged.items() if old in asked
        ]
        return [*leads.values(), *markers]


def _archived_ms(record: Mapping[str, Any]) -> int | None:
    raw = record.get("archivedAt")
    if not raw:
        return None
    try:
        return to_epoch_ms(parse_datetime(str(raw)))
    except ValueError:
        return None


def _url_cost(properties: Sequence[str]) -> int:
    return sum(len("&properties=") + len(p) for p in properties)
