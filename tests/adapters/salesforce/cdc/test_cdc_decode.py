"""Decoding change events: field bitmaps (as Salesforce documents them), Avro payloads, echo detection, the batch plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.adapters.salesforce.cdc.events import (
    ChangeEvent,
    EventSchema,
    decode_bitmap,
    decode_event,
    encode_bitmap,
    encode_payload,
    is_echo,
    origin_client,
    plan_events,
)
from connector.sandbox.pubsub import lead_change_schema

HEADER = {"type": "record", "name": "ChangeEventHeader", "fields": [
    {"name": "entityName", "type": "string"},
    {"name": "recordIds", "type": {"type": "array", "items": "string"}},
    {"name": "changeType", "type": "string"},
    {"name": "changeOrigin", "type": "string"},
    {"name": "commitTimestamp", "type": "long"},
    {"name": "commitUser", "type": "string"},
    {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
    {"name": "diffFields", "type": {"type": "array", "items": "string"}},
    {"name": "changedFields", "type": {"type": "array", "items": "string"}},
]}
NAME = {"type": "record", "name": "Switchable_PersonName", "fields": [
    {"name": n, "type": ["null", "string"], "default": None} for n in ("Salutation", "FirstName", "LastName")]}
ADDRESS = {"type": "record", "name": "Address", "fields": [
    {"name": n, "type": ["null", "string"], "default": None} for n in ("Street", "City", "State", "PostalCode", "Country")]}
TOP = ["Title", "Company", "Email", "Phone", "Website", "Industry", "Status", "OwnerId", "LastModifiedDate"]
SCHEMA_JSON = json.dumps({"type": "record", "name": "LeadChangeEvent", "namespace": "com.sforce.eventbus", "fields": [
    {"name": "ChangeEventHeader", "type": HEADER},  # position 0
    {"name": "Name", "type": ["null", NAME], "default": None},  # 1 (compound)
    {"name": "Title", "type": ["null", "string"], "default": None},  # 2
    {"name": "Company", "type": ["null", "string"], "default": None},  # 3
    {"name": "Address", "type": ["null", ADDRESS], "default": None},  # 4 (compound)
    {"name": "MailingAddress", "type": ["null", "Address"], "default": None},  # 5 (compound, by name reference)
    *({"name": n, "type": ["null", "string"], "default": None} for n in TOP[2:]),  # 6..12
]})
SCHEMA = EventSchema.from_json("schema-1", SCHEMA_JSON)


def test_schema_lists_top_level_and_compound_fields() -> None:
    assert SCHEMA.field_names[:6] == ("ChangeEventHeader", "Name", "Title", "Company", "Address", "MailingAddress")
    assert SCHEMA.nested == {1: ("Salutation", "FirstName", "LastName"), 4: ADDRESS_FIELDS, 5: ADDRESS_FIELDS}


ADDRESS_FIELDS = ("Street", "City", "State", "PostalCode", "Country")


@pytest.mark.parametrize(("bitmaps", "names"), [
    (["0x04"], ("Title",)),  # bit 2
    (["0x0C"], ("Title", "Company")),  # bits 2 and 3
    (["0x0c"], ("Title", "Company")),  # hex digits in either case
    (["0x1000"], ("LastModifiedDate",)),  # bit 12: past the first byte
    # "0x0102": read right to left, bit 1 is the low byte's second bit, bit 8 the high byte's first.
    (["0x0102"], ("Name", "Website")),
    (["0x04", "1-0x02"], ("Title", "Name.FirstName")),  # a top-level field and a compound child
    (["4-0x11"], ("Address.Street", "Address.Country")),  # only compound children changed
    (["0x1000", "1-0x06", "5-0x02"], ("LastModifiedDate", "Name.FirstName", "Name.LastName", "MailingAddress.City")),
    (["LastModifiedDate", "Title"], ("LastModifiedDate", "Title")),  # plain names pass through
    ([], ()),
])
def test_decode_bitmap(bitmaps: list[str], names: tuple[str, ...]) -> None:
    assert decode_bitmap(bitmaps, SCHEMA) == names


@pytest.mark.parametrize(("bitmap", "message"), [
    ("0x8000", "names field 15"),  # beyond the 13 fields: the payload used another schema
    ("2-0x01", "is not a compound field"),
    ("1-0x10", "names child 4"),
])
def test_decode_bitmap_refuses_bits_the_schema_does_not_have(bitmap: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_bitmap([bitmap], SCHEMA)


@given(st.sets(st.sampled_from([*SCHEMA.field_names[1:], "Name.FirstName", "Name.LastName", "Address.City", "MailingAddress.Country"])))
def test_encode_then_decode_gives_the_same_fields(names: set[str]) -> None:
    assert set(decode_bitmap(encode_bitmap(names, SCHEMA), SCHEMA)) == names


@pytest.mark.parametrize(("origin", "client"), [
    ("com/salesforce/api/rest/62.0;client=crm-lead-connector", "crm-lead-connector"),
    ("com/salesforce/api/soap/51.0;client=SfdcInternalAPI/", "SfdcInternalAPI/"),
    ("com/salesforce/api/rest/62.0; client = spaced ", "spaced"),
    ("com/salesforce/api/rest/62.0", None),
    ("", None),
])
def test_origin_client(origin: str, client: str | None) -> None:
    assert origin_client(origin) == client


def event(change_type: str, *ids: str, origin: str = "", entity: str = "Lead") -> ChangeEvent:
    return ChangeEvent(b"\x01", entity, change_type, ids, (), (), (), origin, datetime(2026, 1, 1, tzinfo=UTC), None, None, None)


OURS = "com/salesforce/api/rest/62.0;client=crm-lead-connector"
THEIRS = "com/salesforce/api/rest/62.0;client=marketing-sync"


@pytest.mark.parametrize(("events", "refetch", "deleted", "poll", "outcomes"), [
    ([event("CREATE", "a")], ("a",), (), False, {"create": 1}),
    ([event("UPDATE", "a", origin=OURS)], (), (), False, {"echo": 1}),
    ([event("UPDATE", "a", origin=THEIRS)], ("a",), (), False, {"update": 1}),
    ([event("UPDATE", "a", "b", "c")], ("a", "b", "c"), (), False, {"update": 1}),  # one event, several records
    ([event("DELETE", "a")], (), ("a",), False, {"delete": 1}),
    ([event("DELETE", "a"), event("UNDELETE", "a")], ("a",), (), False, {"delete": 1, "undelete": 1}),
    ([event("UPDATE", "a"), event("DELETE", "a")], (), ("a",), False, {"update": 1, "delete": 1}),
    ([event("GAP_UPDATE", "a", "b", origin=OURS)], ("a", "b"), (), False, {"gap": 1}),  # a gap is never an echo
    ([event("GAP_OVERFLOW")], (), (), True, {"overflow": 1}),
    ([event("UPDATE", "003x", entity="Contact")], (), (), False, {"other_entity": 1}),  # /data/ChangeEvents
])
def test_plan_events(events: list[ChangeEvent], refetch: tuple[str, ...], deleted: tuple[str, ...], poll: bool,
                     outcomes: dict[str, int]) -> None:
    plan = plan_events(events, client="crm-lead-connector")
    assert (plan.refetch_ids, plan.deleted_ids, plan.poll, dict(plan.outcomes)) == (refetch, deleted, poll, outcomes)


def test_echo_needs_a_client_id() -> None:
    assert not is_echo(event("UPDATE", "a", origin="com/salesforce/api/rest/62.0;client="), "")
    assert is_echo(event("UPDATE", "a", origin=OURS), "crm-lead-connector")


def test_avro_payload_round_trip_with_the_sandbox_schema() -> None:
    schema_json = json.dumps(lead_change_schema({"Id": "id", "FirstName": "string", "LastName": "string", "City": "string",
                                                 "Title": "string", "NumberOfEmployees": "int", "LastModifiedDate": "datetime"}))
    schema = EventSchema.from_json("s", schema_json)
    header = {
        "entityName": "Lead", "recordIds": ["00Q1", "00Q2"], "changeType": "UPDATE",
        "changeOrigin": OURS, "transactionKey": "t", "sequenceNumber": 1, "commitTimestamp": 1767261600123,
        "commitNumber": 9, "commitUser": "005x", "nulledFields": encode_bitmap(["Title"], schema), "diffFields": [],
        "changedFields": encode_bitmap(["Title", "Name.LastName", "Address.City", "NumberOfEmployees"], schema),
    }
    payload = encode_payload(schema, {"ChangeEventHeader": header, "NumberOfEmployees": 12,
                                      "Name": {"Salutation": None, "FirstName": None, "LastName": "Okafor"}})
    decoded = decode_event(schema, payload, b"\x00\x07")
    assert decoded.record_ids == ("00Q1", "00Q2") and decoded.change_type == "UPDATE" and decoded.entity == "Lead"
    assert set(decoded.changed_fields) == {"Title", "Name.LastName", "Address.City", "NumberOfEmployees"}
    assert decoded.nulled_fields == ("Title",)
    assert decoded.commit_timestamp == datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert decoded.values["NumberOfEmployees"] == 12 and decoded.values["Name"]["LastName"] == "Okafor"
    assert decoded.replay_id == b"\x00\x07" and is_echo(decoded, "crm-lead-connector")


def test_payload_without_header_is_refused() -> None:
    schema = EventSchema.from_json("p", json.dumps({"type": "record", "name": "Plain__e", "fields": [
        {"name": "ChangeEventHeader", "type": ["null", "string"], "default": None}]}))
    with pytest.raises(ValueError, match="no ChangeEventHeader"):
        decode_event(schema, encode_payload(schema, {"ChangeEventHeader": None}), b"")
