"""Change Data Capture events: Avro payloads, the ChangeEventHeader, field bitmaps, echo detection and the batch plan.

[crm-behaviour: Salesforce Change Data Capture events]: one event may name several records (`recordIds`); GAP_* events carry no field
data; `changeOrigin` ends in `;client=<id>` when the change came through an API call that sent
`Sforce-Call-Options: client=<id>`. `changedFields` / `nulledFields` / `diffFields` arrive as field
bitmaps: "0x…" is a hex number whose bit i names field i of the event schema's top-level field
list (bit 0 = the lowest bit of the last byte); "p-0x…" is the same over the child fields of the
compound field at top-level position p (Name, Address), reported as "Parent.Child".
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastavro

HEADER_FIELD = "ChangeEventHeader"
# changeType values; SNAPSHOT events are not sent on CDC channels but the enum carries it.
CHANGE_TYPES = ("CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE",
                "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT")
GAP_OVERFLOW = "GAP_OVERFLOW"


@dataclass(frozen=True)
class EventSchema:
    """One event schema (by its id): the parsed Avro schema and the field lists the bitmaps index into."""

    schema_id: str
    parsed: Any = field(repr=False)
    field_names: tuple[str, ...]
    nested: Mapping[int, tuple[str, ...]]  # top-level position of a compound field -> its child field names

    @classmethod
    def from_json(cls, schema_id: str, schema_json: str) -> EventSchema:
        raw = json.loads(schema_json)
        records: dict[str, Mapping[str, Any]] = {}
        _collect_records(raw, records, raw.get("namespace"))
        names = tuple(str(f["name"]) for f in raw.get("fields", ()))
        nested: dict[int, tuple[str, ...]] = {}
        for position, spec in enumerate(raw.get("fields", ())):
            record = _record_of(spec.get("type"), records)
            if record is not None and spec["name"] != HEADER_FIELD:
                nested[position] = tuple(str(f["name"]) for f in record.get("fields", ()))
        return cls(schema_id, fastavro.parse_schema(raw), names, nested)


def _collect_records(node: Any, out: dict[str, Mapping[str, Any]], namespace: str | None) -> None:
    """Every named record in a schema, by short and full name (a compound type may be referenced by name later)."""
    if isinstance(node, list):
        for item in node:
            _collect_records(item, out, namespace)
    elif isinstance(node, dict):
        if node.get("type") == "record" and "name" in node:
            ns = node.get("namespace", namespace)
            out[str(node["name"])] = node
            if ns:
                out[f"{ns}.{node['name']}"] = node
            for spec in node.get("fields", ()):
                _collect_records(spec.get("type"), out, ns)
        elif "type" in node:
            _collect_records(node["type"], out, namespace)


def _record_of(type_spec: Any, records: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The record type of a field, looking through ["null", record] unions and named references."""
    if isinstance(type_spec, list):
        for branch in type_spec:
            found = _record_of(branch, records)
            if found is not None:
                return found
        return None
    if isinstance(type_spec, dict):
        return type_spec if type_spec.get("type") == "record" else None
    if isinstance(type_spec, str):
        return records.get(type_spec)
    return None


def _bits(hex_text: str) -> list[int]:
    """Positions of the set bits of a "0x…" bitmap, lowest first."""
    value = int(hex_text[2:] or "0", 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def decode_bitmap(entries: Iterable[str], schema: EventSchema) -> tuple[str, ...]:
    """Field bitmap strings → field names ("Title", "Name.FirstName"); plain names pass through unchanged.

    A bit beyond the schema's field list means the payload was written with another schema than
    the one named: that is a bug to see, so it raises ValueError instead of guessing.
    """
    names: list[str] = []
    for entry in entries:
        if entry.startswith("0x"):
            for bit in _bits(entry):
                if bit >= len(schema.field_names):
                    raise ValueError(f"bitmap {entry} names field {bit}; schema {schema.schema_id} has {len(schema.field_names)}")
                names.append(schema.field_names[bit])
        elif "-0x" in entry:
            position_text, _, bitmap = entry.partition("-")
            position = int(position_text)
            children = schema.nested.get(position)
            if children is None:
                raise ValueError(f"bitmap {entry}: field {position} of schema {schema.schema_id} is not a compound field")
            for bit in _bits(bitmap):
                if bit >= len(children):
                    raise ValueError(f"bitmap {entry} names child {bit}; {schema.field_names[position]} has {len(children)}")
                names.append(f"{schema.field_names[position]}.{children[bit]}")
        else:
            names.append(entry)
    return tuple(names)


def encode_bitmap(names: Iterable[str], schema: EventSchema) -> list[str]:
    """Field names → bitmap strings, the inverse of decode_bitmap (the sandbox emits events with it)."""
    top = 0
    nested: dict[int, int] = {}
    positions = {name: i for i, name in enumerate(schema.field_names)}
    for name in names:
        parent, dot, child = name.partition(".")
        if dot:
            position = positions[parent]
            nested[position] = nested.get(position, 0) | 1 << schema.nested[position].index(child)
        else:
            top |= 1 << positions[name]
    out = [_hex(top)] if top else []
    out += [f"{position}-{_hex(bits)}" for position, bits in sorted(nested.items())]
    return out


def _hex(value: int) -> str:
    digits = f"{value:x}"
    return "0x" + ("0" * (len(digits) % 2)) + digits.upper()


@dataclass(frozen=True)
class ChangeEvent:
    """One decoded change event: its header (names decoded from the bitmaps) and its replay id."""

    replay_id: bytes
    entity: str
    change_type: str
    record_ids: tuple[str, ...]
    changed_fields: tuple[str, ...]
    nulled_fields: tuple[str, ...]
    diff_fields: tuple[str, ...]
    change_origin: str
    commit_timestamp: datetime
    commit_user: str | None
    transaction_key: str | None
    sequence_number: int | None
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the payload's non-header fields

    @property
    def is_gap(self) -> bool:
        return self.change_type.startswith("GAP_")


def decode_payload(schema: EventSchema, payload: bytes) -> dict[str, Any]:
    """The Avro binary payload (no container, no schema header) as a dict."""
    return dict(fastavro.schemaless_reader(io.BytesIO(payload), schema.parsed))  # type: ignore[arg-type]


def encode_payload(schema: EventSchema, record: Mapping[str, Any]) -> bytes:
    """A record as an Avro binary payload (the sandbox publishes with it)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema.parsed, dict(record))
    return out.getvalue()


def decode_event(schema: EventSchema, payload: bytes, replay_id: bytes) -> ChangeEvent:
    """A ConsumerEvent's payload → ChangeEvent. ValueError / KeyError: not a change event of this schema."""
    record = decode_payload(schema, payload)
    header = record.get(HEADER_FIELD)
    if not isinstance(header, Mapping):
        raise ValueError(f"schema {schema.schema_id}: payload has no {HEADER_FIELD}")
    commit_ms = header.get("commitTimestamp")
    return ChangeEvent(
        replay_id=replay_id,
        entity=str(header.get("entityName") or ""),
        change_type=str(header.get("changeType") or ""),
        record_ids=tuple(str(i) for i in header.get("recordIds") or ()),
        changed_fields=decode_bitmap(header.get("changedFields") or (), schema),
        nulled_fields=decode_bitmap(header.get("nulledFields") or (), schema),
        diff_fields=decode_bitmap(header.get("diffFields") or (), schema),
        change_origin=str(header.get("changeOrigin") or ""),
        commit_timestamp=datetime.fromtimestamp((commit_ms or 0) / 1000, tz=UTC),
        commit_user=header.get("commitUser"),
        transaction_key=header.get("transactionKey"),
        sequence_number=header.get("sequenceNumber"),
        values={k: v for k, v in record.items() if k != HEADER_FIELD and v is not None},
    )


def origin_client(change_origin: str) -> str | None:
    """The `client=` parameter of a changeOrigin (`com/salesforce/api/rest/62.0;client=crm-lead-connector`)."""
    for part in change_origin.split(";")[1:]:
        key, eq, value = part.strip().partition("=")
        if eq and key.strip().lower() == "client":
            return value.strip()
    return None


def is_echo(event: ChangeEvent, client: str) -> bool:
    """The change came from the connector's own write (its Sforce-Call-Options client id).

    [crm-behaviour: Salesforce echo events carry our client id]

    GAP events are never echoes: they say changes were missed, whoever made them.
    """
    return not event.is_gap and bool(client) and origin_client(event.change_origin) == client


@dataclass(frozen=True)
class CdcPlan:
    """What one batch of events asks for: leads to re-read, leads gone, whether only a poll can catch up."""

    refetch_ids: tuple[str, ...]
    deleted_ids: tuple[str, ...]
    poll: bool
    outcomes: Counter[str]
    commit_times: tuple[datetime, ...]  # of the events that lead to work (for the commit-to-write lag)


def plan_events(events: Sequence[ChangeEvent], *, client: str, entity: str = "Lead") -> CdcPlan:
    """Classify a batch: echoes and other objects are dropped; GAP_OVERFLOW asks for a poll; the rest name records.

    Records are always re-read by id: an event carries only the changed fields, and a later event
    in the same batch may already be stale. A DELETE marks its ids deleted unless a later event
    of the batch brings the record back (UNDELETE, GAP_UNDELETE).
    """
    outcomes: Counter[str] = Counter()
    refetch: dict[str, None] = {}
    deleted: dict[str, None] = {}
    poll = False
    commit_times: list[datetime] = []
    for event in events:
        if event.entity != entity:
            outcomes["other_entity"] += 1
            continue
        if event.change_type == GAP_OVERFLOW:
            outcomes["overflow"] += 1
            poll = True
            commit_times.append(event.commit_timestamp)
            continue
        if is_echo(event, client):
            outcomes["echo"] += 1
            continue
        outcomes["gap" if event.is_gap else event.change_type.lower()] += 1
        commit_times.append(event.commit_timestamp)
        for rid in event.record_ids:
            if event.change_type == "DELETE":
                refetch.pop(rid, None)
                deleted[rid] = None
            else:
                # GAP_DELETE too is re-read: a record that is gone is left out by the read and counted deleted.
                deleted.pop(rid, None)
                refetch[rid] = None
    return CdcPlan(tuple(refetch), tuple(deleted), poll, outcomes, tuple(commit_times))
