"""The HubSpot sandbox's data: records per object type in id order, associations, owners, property definitions, changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.core.clock import Clock
from connector.sandbox.hubspot.objects import (
    ASSOC_COMPANY_CONTACT,
    ASSOC_CONTACT_COMPANY,
    CREATED_PROPERTY,
    DEFAULT_PROPERTIES,
    ID_START,
    MODIFIED_PROPERTY,
    OBJECT_TYPES,
    object_type_or_raise,
)
from connector.sandbox.hubspot.properties import PropertyDef, standard_properties
from connector.sandbox.hubspot.wire import abort, as_int, iso, to_ms

AssociationKind = tuple[int, str | None]  # (association type id, label)


@dataclass(slots=True)
class Record:
    id: int
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    change_source: str = "IMPORT"
    archived: bool = False
    archived_ms: int | None = None
    merged_into: int | None = None

    @property
    def live(self) -> bool:
        return not self.archived and self.merged_into is None


@dataclass(frozen=True)
class Change:
    """One change to a record, in order: API writes carry source INTEGRATION, person edits CRM_UI.

    [crm-behaviour: HubSpot echo events carry the app id]
    """

    object_type: str
    record_id: str
    properties: Mapping[str, str]
    source: str
    occurred_ms: int


class RecordStore:
    """Everything the account holds; callers hold the sandbox lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.properties = standard_properties()
        self.records: dict[str, dict[int, Record]] = {t: {} for t in OBJECT_TYPES}
        # Ids ascending (= creation order) and the records in the same order, for bisecting on id.
        self.order: dict[str, list[int]] = {t: [] for t in OBJECT_TYPES}
        self.rows: dict[str, list[Record]] = {t: [] for t in OBJECT_TYPES}
        self.next_id = dict(ID_START)
        # (from type, to type) → from id → to id → [(typeId, label)]
        self.assoc: dict[tuple[str, str], dict[int, dict[int, list[AssociationKind]]]] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self.change_log: list[Change] = []

    def now_ms(self) -> int:
        return to_ms(self.clock.now())

    def insert(self, object_type: str, props: Mapping[str, str], created_ms: int, modified_ms: int, source: str) -> int:
        rid = self.next_id[object_type]
        self.next_id[object_type] = rid + 1
        record = Record(rid, {k: v for k, v in props.items() if v != ""}, created_ms, modified_ms, source)
        self.records[object_type][rid] = record
        self.order[object_type].append(rid)
        self.rows[object_type].append(record)
        return rid

    def create(self, object_type: str, properties: Mapping[str, str], source: str) -> int:
        """A new record stamped now, logged as a change; a new contact joins the company with its email domain."""
        now = self.now_ms()
        props = dict(properties)
        if object_type == "contacts" and "@" in props.get("email", ""):
            props.setdefault("hs_email_domain", props["email"].rsplit("@", 1)[1].lower())
        rid = self.insert(object_type, props, now, now, source)
        self.change_log.append(Change(object_type, str(rid), dict(props), source, now))
        if object_type == "contacts":
            # HubSpot's "auto-associate companies" setting links a new contact to the company with its email domain.
            company = self.company_by_domain(props.get("hs_email_domain", ""))
            if company is not None:
                self.link("contacts", rid, "companies", company, ASSOC_CONTACT_COMPANY, ASSOC_COMPANY_CONTACT)
        return rid

    def link(self, a_type: str, a_id: int, b_type: str, b_id: int,
             forward: Iterable[AssociationKind], backward: Iterable[AssociationKind]) -> None:
        for (ft, fid, tt, tid, kinds) in ((a_type, a_id, b_type, b_id, forward), (b_type, b_id, a_type, a_id, backward)):
            existing = self.assoc.setdefault((ft, tt), {}).setdefault(fid, {}).setdefault(tid, [])
            for kind in kinds:
                if kind not in existing:
                    existing.append(kind)

    def require(self, object_type: str, record_id: str) -> Record:
        record = self.records[object_type_or_raise(object_type)].get(as_int(record_id))
        if record is None:
            raise KeyError(f"hubspot sandbox: no {object_type} record {record_id}")
        return record

    def resolve(self, object_type: str, rid: int, *, follow_merges: bool = True) -> Record | None:
        record = self.records[object_type].get(rid)
        hops = 0
        while record is not None and record.merged_into is not None and follow_merges and hops < 100:
            record = self.records[object_type].get(record.merged_into)
            hops += 1
        return record

    def lookup(self, otype: str, key: str, id_property: str, *, archived: bool) -> Record | None:
        """An id (following merges: a merged-away id reads as the survivor) or a unique-property value.

        [crm-behaviour: HubSpot merges: the old id reads as the survivor]
        """
        if id_property and id_property != "hs_object_id":
            if id_property not in self.properties[otype]:
                raise abort(400, "VALIDATION_ERROR", f"Property {id_property!r} does not exist")
            wanted = key.strip().lower()
            for candidate in self.rows[otype]:
                if candidate.live and candidate.props.get(id_property, "").strip().lower() == wanted:
                    return candidate
            return None
        record = self.resolve(otype, as_int(key))
        if record is None or (record.archived and not archived):
            return None
        return record

    def archive(self, record: Record) -> None:
        """Archive (soft-delete) a live record; like HubSpot, this does not bump the modified date.

        [crm-behaviour: HubSpot archiving does not bump the modified date]
        """
        record.archived, record.archived_ms = True, self.now_ms()

    def company_by_domain(self, domain: str) -> int | None:
        if not domain:
            return None
        for record in self.records["companies"].values():
            if record.live and record.props.get("domain", "").lower() == domain.lower():
                return record.id
        return None

    def apply(self, object_type: str, record: Record, properties: Mapping[str, str], source: str) -> dict[str, str]:
        """Set values (`""` clears); bumps the modified date only when something changed; returns what changed."""
        changed: dict[str, str] = {}
        for name, value in properties.items():
            value = "" if value is None else str(value)
            if record.props.get(name, "") == value:
                continue
            changed[name] = value
            if value == "":
                record.props.pop(name, None)
            else:
                record.props[name] = value
            if object_type == "contacts" and name == "email" and "@" in value:
                record.props["hs_email_domain"] = value.rsplit("@", 1)[1].lower()
        if changed:
            now = self.now_ms()
            record.updated_ms = now
            record.change_source = source
            self.change_log.append(Change(object_type, str(record.id), changed, source, now))
        return changed

    def merge(self, object_type: str, primary: Record, merged: Record, source: str) -> None:
        now = self.now_ms()
        merged.merged_into = primary.id
        old = [i for i in (primary.props.get("hs_merged_object_ids") or "").split(";") if i]
        old += [str(merged.id)] + [i for i in (merged.props.get("hs_merged_object_ids") or "").split(";") if i]
        primary.props["hs_merged_object_ids"] = ";".join(dict.fromkeys(old))
        for key, value in merged.props.items():
            primary.props.setdefault(key, value)  # the primary's values win; blanks are filled from the merged record
        for (ft, tt), links in list(self.assoc.items()):
            if ft == object_type and merged.id in links:
                for target, kinds in list(links[merged.id].items()):
                    back = self.assoc.get((tt, ft), {}).get(target, {}).get(merged.id, [])
                    self.link(ft, primary.id, tt, target, kinds, back)
        primary.updated_ms = now
        primary.change_source = source
        self.change_log.append(Change(object_type, str(primary.id), {"hs_merged_object_ids": primary.props["hs_merged_object_ids"]}, source, now))

    def all_properties(self, object_type: str, record: Record) -> dict[str, str]:
        props = dict(record.props)
        props[CREATED_PROPERTY[object_type]] = iso(record.created_ms)
        props[MODIFIED_PROPERTY[object_type]] = iso(record.updated_ms)
        props["hs_object_id"] = str(record.id)
        return props

    def property_value(self, object_type: str, record: Record, name: str) -> str | None:
        if name == "hs_object_id":
            return str(record.id)
        if name == CREATED_PROPERTY[object_type]:
            return iso(record.created_ms)
        if name == MODIFIED_PROPERTY[object_type]:
            return iso(record.updated_ms)
        return record.props.get(name)

    def render(self, object_type: str, record: Record, properties: Sequence[str] | None) -> dict[str, Any]:
        """A record as the SimplePublicObject model: requested known properties, `null` when they have no value."""
        defs: Mapping[str, PropertyDef] = self.properties[object_type]
        names = [n for n in (properties or DEFAULT_PROPERTIES[object_type]) if n in defs]
        out: dict[str, Any] = {
            "id": str(record.id),
            "properties": {n: self.property_value(object_type, record, n) for n in names},
            "createdAt": iso(record.created_ms),
            "updatedAt": iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms is not None:
            out["archivedAt"] = iso(record.archived_ms)
        return out
