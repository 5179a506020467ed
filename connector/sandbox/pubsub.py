"""The sandbox's Pub/Sub API server on loopback: LeadChangeEvent over real gRPC, Avro payloads, replay ids, retention.

It imitates what the connector relies on [crm-behaviour: Salesforce Pub/Sub API calls]: auth metadata (accesstoken must be a live
sandbox token, instanceurl and tenantid must match the org), GetTopic / GetSchema, Subscribe with
flow control (at most 100 requested events outstanding), LATEST / EARLIEST / CUSTOM replay,
INVALID_ARGUMENT + `error-code: …fetch.replayid.corrupted` for a replay id it did not issue or that
is older than `retention_seconds`, keepalive responses carrying the latest replay id, and
`changeOrigin` with the REST call's `Sforce-Call-Options` client. Events are retained in memory and
purged only when a subscription starts, so a live stream never loses one.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
import grpc

from connector.adapters.salesforce.cdc import pubsub_api_pb2 as pb
from connector.adapters.salesforce.cdc import pubsub_api_pb2_grpc as pb_grpc
from connector.adapters.salesforce.cdc.events import CHANGE_TYPES, EventSchema, encode_bitmap, encode_payload

if TYPE_CHECKING:
    from connector.sandbox.salesforce import SalesforceSandbox

TOPICS = ("/data/LeadChangeEvent", "/data/ChangeEvents")
MAX_REQUESTED = 100  # outstanding num_requested per stream; more is treated as 100 [crm-behaviour: Salesforce Pub/Sub API calls]
REST_ORIGIN = "com/salesforce/api/rest/63.0"
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_VALIDATION_FAILED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.topic.not.found"
REQUESTED_INVALID = "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
REPLAY_BASE = 7_000_000  # first replay id; ids are opaque 8-byte big-endian counters, never contiguous across orgs
# Lead fields folded into compound fields, as in real change events.
COMPOUND = {"Name": ("Salutation", "FirstName", "LastName"),
            "Address": ("Street", "City", "State", "PostalCode", "Country")}
# Row fields that are not part of a change event (the header carries the id; stamps are system bookkeeping).
NOT_IN_EVENT = frozenset({"Id", "Name", "IsDeleted", "SystemModstamp"})
_AVRO_TYPES = {"boolean": "boolean", "int": "int", "double": "double", "currency": "double", "percent": "double",
               "date": "int", "datetime": "long"}


@dataclass(frozen=True)
class PublishedEvent:
    """What the sandbox published (for tests and benchmarks: who changed what, and when)."""

    replay: int
    change_type: str
    record_ids: tuple[str, ...]
    change_origin: str
    changed_fields: tuple[str, ...]
    committed_at: datetime


@dataclass(frozen=True)
class _Stored:
    event: PublishedEvent
    message: pb.ConsumerEvent


def lead_change_schema(lead_fields: Mapping[str, str]) -> dict[str, Any]:
    """The LeadChangeEvent Avro schema over the sandbox's Lead fields (name -> sandbox type): header + nullable unions."""
    def nullable(name: str, avro_type: Any) -> dict[str, Any]:
        return {"name": name, "type": ["null", avro_type], "default": None}

    header = {"type": "record", "name": "ChangeEventHeader", "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": list(CHANGE_TYPES)}},
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ]}
    fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": header}]
    compound_type = {"Name": "Switchable_PersonName", "Address": "Address"}
    for parent, children in COMPOUND.items():
        record = {"type": "record", "name": compound_type[parent],
                  "fields": [nullable(child, "string") for child in children]}
        fields.append(nullable(parent, record))
    folded = {child for children in COMPOUND.values() for child in children}
    for name, kind in lead_fields.items():
        if name not in NOT_IN_EVENT and name not in folded:
            fields.append(nullable(name, _AVRO_TYPES.get(kind, "string")))
    return {"type": "record", "name": "LeadChangeEvent", "namespace": "com.sforce.eventbus", "fields": fields}


def _avro_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if kind == "date" and isinstance(value, date):
        return (value - date(1970, 1, 1)).days
    if kind == "int":
        return int(value)
    if _AVRO_TYPES.get(kind) == "double":
        return float(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def replay_bytes(replay: int) -> bytes:
    return replay.to_bytes(8, "big")


class PubSubSandbox(pb_grpc.PubSubServicer):
    """The Pub/Sub API of one SalesforceSandbox (start() → "127.0.0.1:PORT")."""

    def __init__(self, sandbox: SalesforceSandbox, *, tls: bool = False) -> None:
        self._sandbox = sandbox
        self._tls = tls
        kinds = sandbox.lead_field_types()
        self._kinds = kinds
        self.schema_json = json.dumps(lead_change_schema(kinds), separators=(",", ":"))
        parsed = fastavro.parse_schema(json.loads(self.schema_json))
        self.schema_id = fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        self.schema = EventSchema.from_json(self.schema_id, self.schema_json)
        self._cond = threading.Condition()
        self._log: list[_Stored] = []
        self._next = REPLAY_BASE
        self._purged_through = REPLAY_BASE - 1  # replay ids at or below this are gone (or never issued)
        self._commits = 0
        self._generation = 0  # drop_streams() bumps it: open streams end with UNAVAILABLE
        self._stopping = False
        self.keepalive_seconds = 270.0  # Salesforce sends an empty FetchResponse at least this often
        self.calls: Counter[str] = Counter()
        self.listeners: list[Callable[[PublishedEvent], None]] = []
        self.open_streams = 0
        self.streams_started = 0  # Subscribe streams that got past their first request (position fixed)
        self._server: grpc.Server | None = None
        self.target = ""

    # lifecycle

    def start(self) -> str:
        server = grpc.server(ThreadPoolExecutor(max_workers=16, thread_name_prefix="pubsub-sandbox"))
        pb_grpc.add_PubSubServicer_to_server(self, server)  # type: ignore[no-untyped-call]  # generated code is untyped
        if self._tls:
            cert = Path(self._sandbox.ca_file)
            credentials = grpc.ssl_server_credentials([(cert.with_name("sandbox-key.pem").read_bytes(), cert.read_bytes())])
            port = server.add_secure_port("127.0.0.1:0", credentials)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.target = f"127.0.0.1:{port}"
        return self.target

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None

    # publishing (called by the sandbox with its lock held)

    def publish_change(self, change_type: str, lead_id: str, before: Mapping[str, Any] | None, after: Mapping[str, Any], *,
                       client: str | None, api: bool, user_id: str, now: datetime) -> PublishedEvent:
        """One change event for one lead: CREATE carries every non-null field, UPDATE the changed ones."""
        values: dict[str, Any] = {}
        changed: list[str] = []
        nulled: list[str] = []
        folded = {child: parent for parent, children in COMPOUND.items() for child in children}
        for name, kind in self._kinds.items():
            if name in NOT_IN_EVENT:
                continue
            new = after.get(name)
            if change_type == "UPDATE" or (change_type == "UNDELETE" and before is not None):
                if before is None or before.get(name) == new:
                    continue
                path = f"{folded[name]}.{name}" if name in folded else name
                changed.append(path)
                if new is None:
                    nulled.append(path)
            elif change_type == "DELETE" or new is None:
                continue
            if name in folded:
                values.setdefault(folded[name], {c: None for c in COMPOUND[folded[name]]})[name] = _avro_value(new, "string")
            else:
                values[name] = _avro_value(new, kind)
        origin = "" if not api else f"{REST_ORIGIN};client={client}" if client else REST_ORIGIN
        return self._append(change_type, (lead_id,), origin, values,
                            changed=changed if change_type == "UPDATE" else [], nulled=nulled, user_id=user_id, now=now)

    def emit_gap(self, change_type: str, record_ids: Sequence[str], *, now: datetime | None = None) -> PublishedEvent:
        """A GAP_* event (no field data), as Salesforce sends when it could not build the real events."""
        if not change_type.startswith("GAP_"):
            raise ValueError(f"not a gap change type: {change_type}")
        return self._append(change_type, tuple(record_ids), "", {}, changed=[], nulled=[],
                            user_id=self._sandbox.admin_user_id, now=now or datetime.now(UTC))

    def _append(self, change_type: str, record_ids: tuple[str, ...], origin: str, values: Mapping[str, Any], *,
                changed: list[str], nulled: list[str], user_id: str, now: datetime) -> PublishedEvent:
        with self._cond:
            self._commits += 1
            header = {
                "entityName": "Lead", "recordIds": list(record_ids), "changeType": change_type, "changeOrigin": origin,
                "transactionKey": uuid.uuid4().hex, "sequenceNumber": 1, "commitTimestamp": int(now.timestamp() * 1000),
                "commitNumber": self._commits, "commitUser": user_id,
                "nulledFields": encode_bitmap(nulled, self.schema), "diffFields": [],
                "changedFields": encode_bitmap(changed, self.schema),
            }
            payload = encode_payload(self.schema, {"ChangeEventHeader": header, **values})
            replay = self._next
            self._next += 1
            event = PublishedEvent(replay, change_type, record_ids, origin, tuple(changed), now)
            message = pb.ConsumerEvent(
                event=pb.ProducerEvent(id=str(uuid.uuid4()), schema_id=self.schema_id, payload=payload), replay_id=replay_bytes(replay))
            self._log.append(_Stored(event, message))
            self._cond.notify_all()
        for listener in self.listeners:
            listener(event)
        return event

    @property
    def published(self) -> list[PublishedEvent]:
        with self._cond:
            return [s.event for s in self._log]

    @property
    def latest_replay(self) -> int:
        with self._cond:
            return self._next - 1

    def wait_for_streams(self, started: int, timeout: float) -> bool:
        """Block until `started` Subscribe streams have fixed their start position (a LATEST stream then sees every later change)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.streams_started >= started, timeout)

    def drop_streams(self) -> None:
        """End every open Subscribe stream with UNAVAILABLE (a network drop / server restart)."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    # the service

    def _count(self, name: str) -> None:
        with self._cond:
            self.calls[name] += 1

    def _check_auth(self, context: grpc.ServicerContext) -> None:
        meta = {k: v for k, v in context.invocation_metadata()}
        token = str(meta.get("accesstoken", ""))
        instance = str(meta.get("instanceurl", "")).rstrip("/")
        tenant = str(meta.get("tenantid", ""))
        org = self._sandbox.org_id
        ok = (self._sandbox.user_for_token(token) is not None and instance == self._sandbox.instance_url
              and tenant in (org, org[:15]))
        if not ok:
            self._count("unauthenticated")
            context.set_trailing_metadata((("error-code", AUTH_ERROR),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "The session does not have valid authentication credentials")

    def GetTopic(self, request: pb.TopicRequest, context: grpc.ServicerContext) -> pb.TopicInfo:  # noqa: N802 - gRPC names
        self._count("GetTopic")
        self._check_auth(context)
        if request.topic_name not in TOPICS:
            context.set_trailing_metadata((("error-code", TOPIC_NOT_FOUND),))
            context.abort(grpc.StatusCode.NOT_FOUND, f"topic {request.topic_name} not found")
        return pb.TopicInfo(topic_name=request.topic_name, tenant_guid=self._sandbox.org_id, can_publish=False,
                            can_subscribe=True, schema_id=self.schema_id, rpc_id=uuid.uuid4().hex)

    def GetSchema(self, request: pb.SchemaRequest, context: grpc.ServicerContext) -> pb.SchemaInfo:  # noqa: N802
        self._count("GetSchema")
        self._check_auth(context)
        if request.schema_id != self.schema_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"schema {request.schema_id} not found")
        return pb.SchemaInfo(schema_json=self.schema_json, schema_id=self.schema_id, rpc_id=uuid.uuid4().hex)

    def _start_position(self, first: pb.FetchRequest, context: grpc.ServicerContext) -> int:
        """The replay id the stream starts after; aborts on a replay id out of retention or never issued."""
        with self._cond:
            horizon = self._sandbox.clock_now() - timedelta(seconds=self._sandbox.retention_seconds)
            while self._log and self._log[0].event.committed_at < horizon:
                self._purged_through = self._log.pop(0).event.replay
            if first.replay_preset == pb.ReplayPreset.EARLIEST:
                return self._purged_through
            if first.replay_preset != pb.ReplayPreset.CUSTOM:
                return self._next - 1
            code = None
            if not first.replay_id:
                code = REPLAY_VALIDATION_FAILED
            elif len(first.replay_id) != 8:
                code = REPLAY_CORRUPTED
            else:
                replay = int.from_bytes(first.replay_id, "big")
                if replay <= self._purged_through or replay >= self._next:
                    code = REPLAY_CORRUPTED
                else:
                    return replay
        context.set_trailing_metadata((("error-code", code),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"replay id {first.replay_id.hex()} is not valid for {first.topic_name}")
        raise AssertionError("abort raises")

    def Subscribe(self, request_iterator: Iterator[pb.FetchRequest], context: grpc.ServicerContext) -> Iterator[pb.FetchResponse]:  # noqa: N802
        self._count("Subscribe")
        self._check_auth(context)
        first = next(request_iterator, None)
        if first is None:
            return
        if first.topic_name not in TOPICS:
            context.set_trailing_metadata((("error-code", TOPIC_NOT_FOUND),))
            context.abort(grpc.StatusCode.NOT_FOUND, f"topic {first.topic_name} not found")
        if first.num_requested <= 0:
            context.set_trailing_metadata((("error-code", REQUESTED_INVALID),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "num_requested must be positive")
        position = self._start_position(first, context)
        state: dict[str, Any] = {"pending": min(MAX_REQUESTED, first.num_requested), "ended": False}
        generation = self._generation
        self._read_requests_in_background(request_iterator, first.topic_name, state, context)
        with self._cond:
            self.open_streams += 1
            self.streams_started += 1
            self._cond.notify_all()
        try:
            yield from self._deliver(state, position, generation, context)
        finally:
            with self._cond:
                self.open_streams -= 1

    def _read_requests_in_background(self, request_iterator: Iterator[pb.FetchRequest], topic: str, state: dict[str, Any],
                                     context: grpc.ServicerContext) -> None:
        """Add the stream's later FetchRequests to its pending count (flow control); mark it ended when it closes."""
        def on_end() -> None:
            with self._cond:
                state["ended"] = True
                self._cond.notify_all()

        def read_requests() -> None:
            try:
                for request in request_iterator:
                    if request.topic_name and request.topic_name != topic:
                        continue  # Salesforce ends such a stream with INVALID_ARGUMENT; the connector never sends it
                    with self._cond:
                        state["pending"] = min(MAX_REQUESTED, state["pending"] + max(0, request.num_requested))
                        self._cond.notify_all()
            except grpc.RpcError:
                pass  # the stream ended; on_end wakes the writer
            on_end()

        context.add_callback(on_end)
        threading.Thread(target=read_requests, name="pubsub-sandbox-requests", daemon=True).start()

    def _deliver(self, state: dict[str, Any], position: int, generation: int,
                 context: grpc.ServicerContext) -> Iterator[pb.FetchResponse]:
        """Events after `position` as the client asks for them, keepalives in between, until the stream ends."""
        while True:
            with self._cond:
                def ready() -> bool:
                    return (bool(state["ended"]) or self._stopping or self._generation != generation
                            or (state["pending"] > 0 and self._next - 1 > position))
                woke = self._cond.wait_for(ready, timeout=self.keepalive_seconds)
                if state["ended"]:
                    return
                if self._stopping or self._generation != generation:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the event bus closed the stream; resubscribe")
                batch: list[pb.ConsumerEvent] = []
                if woke:
                    start = next((i for i, s in enumerate(self._log) if s.event.replay > position), len(self._log))
                    batch = [s.message for s in self._log[start: start + int(state["pending"])]]
                    state["pending"] -= len(batch)
                latest = self._next - 1
                pending = int(state["pending"])
            if batch:
                position = int.from_bytes(batch[-1].replay_id, "big")
                latest = position
            yield pb.FetchResponse(events=batch, latest_replay_id=replay_bytes(latest), rpc_id=uuid.uuid4().hex,
                                   pending_num_requested=pending)
