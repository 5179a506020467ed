"""The Pub/Sub API gRPC client: channel, auth metadata, GetTopic, GetSchema (cached by id), the Subscribe stream.

[crm-behaviour: Salesforce Pub/Sub API calls]: every call carries the metadata `accesstoken`, `instanceurl` and `tenantid`
(the org id). Failures are gRPC statuses; Salesforce puts its own code in the `error-code`
trailer, e.g. `sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted` (INVALID_ARGUMENT)
for a replay id that is invalid or older than the 72-hour retention. Subscribe is pull-based:
each FetchRequest asks for `num_requested` more events (at most 100 outstanding per stream).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from connector.adapters.salesforce.cdc import pubsub_api_pb2 as pb
from connector.adapters.salesforce.cdc import pubsub_api_pb2_grpc as pb_grpc
from connector.adapters.salesforce.cdc.events import ChangeEvent, EventSchema, decode_event
from connector.core.errors import AuthError, ConfigError, ConfigProblem, ConnectorError, CrmApiError, TransientError

log = logging.getLogger(__name__)

CRM = "salesforce"
ERROR_CODE_TRAILER = "error-code"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_VALIDATION_FAILED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
REPLAY_CODES = frozenset({REPLAY_CORRUPTED, REPLAY_VALIDATION_FAILED})
# Salesforce answers an empty FetchResponse (keepalive) at least every 270 s; a stream silent for
# longer than this is dead (a half-open TCP connection never errors by itself).
IDLE_TIMEOUT_SECONDS = 330.0
TRANSIENT_STATUSES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED,
})
CREDENTIAL = "salesforce (the API user's session: auth settings; it needs API access and read on Lead change events)"


@dataclass(frozen=True)
class PubSubSession:
    """What authenticates the calls: the REST session's token, its instance URL and the org (tenant) id."""

    access_token: str = field(repr=False)
    instance_url: str
    tenant_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("accesstoken", self.access_token), ("instanceurl", self.instance_url), ("tenantid", self.tenant_id))


def is_replay_rejected(status: grpc.StatusCode | None, code: str | None) -> bool:
    """The server refused the replay id we resumed from (expired past retention, or not one it issued).

    The `error-code` trailer says so; without it (a proxy may drop trailers) INVALID_ARGUMENT on a
    CUSTOM subscribe means the same, since topic and num_requested are checked before we send them.
    """
    return code in REPLAY_CODES or (code is None and status == grpc.StatusCode.INVALID_ARGUMENT)


def translate(exc: grpc.RpcError, method: str, topic: str) -> ConnectorError:
    """A gRPC failure → the connector error the caller acts on (pure table over status and error code)."""
    status: grpc.StatusCode | None = exc.code() if isinstance(exc, grpc.Call) else None
    code = error_code(exc)
    where = f"salesforce pubsub.{method}"
    name = status.name if status is not None else "UNKNOWN"
    if status == grpc.StatusCode.UNAUTHENTICATED:
        return AuthError(f"the Pub/Sub API refused the session ({name}{', ' + code if code else ''}) on {method}",
                         crm=CRM, credential=CREDENTIAL)
    if status == grpc.StatusCode.PERMISSION_DENIED:
        return AuthError(f"the API user may not subscribe to {topic} ({name}{', ' + code if code else ''})", crm=CRM,
                         credential=CREDENTIAL)
    if status == grpc.StatusCode.NOT_FOUND:
        return ConfigError([ConfigProblem("salesforce.cdc_topic", f"topic {topic!r} not found; enable Change Data "
                                          "Capture for Lead in Setup, or name /data/ChangeEvents")])
    if status in TRANSIENT_STATUSES or status is None:
        return TransientError(f"{where}: {name}{' ' + code if code else ''}", crm=CRM, endpoint=f"pubsub.{method}")
    return CrmApiError(f"{name}", crm=CRM, endpoint=f"pubsub.{method}", code=code)


def error_code(exc: grpc.RpcError) -> str | None:
    """Salesforce's `error-code` trailer of a failed call, if any."""
    if not isinstance(exc, grpc.Call):
        return None
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_TRAILER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def open_channel(target: str, *, tls: bool, ca_file: str | None = None) -> grpc.Channel:
    """A channel to the Pub/Sub API: TLS with the system roots (or ca_file), or plaintext (loopback sandbox)."""
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    if not tls:
        return grpc.insecure_channel(target, options=options)
    roots = None
    if ca_file:
        try:
            roots = Path(ca_file).read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigProblem("salesforce.ca_bundle", f"cannot read {ca_file}: {exc.strerror}")]) from None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), options=options)


class Subscription:
    """One open Subscribe stream: iterate its FetchResponses, ask for more with request(), end it with close().

    The request side is a queue drained by gRPC's own thread; close() (or the stop event, or a
    stream silent past idle_timeout) cancels the call, which ends the iteration.
    """

    def __init__(self, stub: pb_grpc.PubSubStub, session: PubSubSession, first: pb.FetchRequest, *,
                 stop: threading.Event, monotonic: Callable[[], float], idle_timeout: float) -> None:
        self.topic = first.topic_name
        self._custom = first.replay_preset == pb.ReplayPreset.CUSTOM
        self._requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        self._requests.put(first)
        self._closed = threading.Event()
        self._stop = stop
        self._monotonic = monotonic
        self._idle_timeout = idle_timeout
        self._last_seen = monotonic()
        self.idle = False
        self._call = stub.Subscribe(self._outgoing(), metadata=session.metadata())
        self._watch = threading.Thread(target=self._watchdog, name="pubsub-subscribe-watchdog", daemon=True)
        self._watch.start()

    def _outgoing(self) -> Iterator[pb.FetchRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _watchdog(self) -> None:
        while not self._closed.is_set():
            left = self._idle_timeout - (self._monotonic() - self._last_seen)
            if left <= 0:
                self.idle = True
                log.warning("pubsub subscribe on %s: no response for %.0f s; reconnecting", self.topic, self._idle_timeout)
                self._call.cancel()
                return
            if self._stop.wait(min(left, 1.0)):
                self._call.cancel()
                return

    def request(self, n: int) -> None:
        """Ask for n more events (flow control)."""
        self._requests.put(pb.FetchRequest(topic_name=self.topic, num_requested=n))

    def __iter__(self) -> Iterator[pb.FetchResponse]:
        """FetchResponses until the stream ends. Errors come out translated; a stop ends the iteration quietly.

        Leaving a loop early keeps the stream open (iterate again to go on); the end of the stream closes it.
        """
        closing = True
        try:
            for response in self._call:
                self._last_seen = self._monotonic()
                yield response
        except GeneratorExit:
            closing = False
            raise
        except grpc.RpcError as exc:
            if self._stop.is_set() and isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.CANCELLED:
                return
            if self.idle:
                raise TransientError(f"salesforce pubsub.Subscribe: no keepalive for {self._idle_timeout:.0f} s",
                                     crm=CRM, endpoint="pubsub.Subscribe") from exc
            if isinstance(exc, grpc.Call) and is_replay_rejected(exc.code(), error_code(exc)) and self._custom:
                raise CrmApiError("the stored replay id was refused (expired or invalid)", crm=CRM,
                                  endpoint="pubsub.Subscribe", code=error_code(exc) or REPLAY_CORRUPTED) from exc
            raise translate(exc, "Subscribe", self.topic) from exc
        finally:
            if closing:
                self.close()
        if not self._stop.is_set():
            # The server ended the stream without a status error: reconnect like after any drop.
            raise TransientError("salesforce pubsub.Subscribe: the server closed the stream", crm=CRM, endpoint="pubsub.Subscribe")

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._requests.put(None)
            self._call.cancel()


class PubSubClient:
    """The Pub/Sub API for one org: topic and schema look-ups (schemas cached by id) and subscriptions."""

    def __init__(self, channel: grpc.Channel, session: Callable[[bool], PubSubSession], *,
                 monotonic: Callable[[], float], idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        self._channel = channel
        self._stub = pb_grpc.PubSubStub(channel)  # type: ignore[no-untyped-call]  # generated code is untyped
        self._session_for = session
        self._session: PubSubSession | None = None
        self._schemas: dict[str, EventSchema] = {}
        self._monotonic = monotonic
        self._idle_timeout = idle_timeout
        self.schema_fetches = 0

    def close(self) -> None:
        self._channel.close()

    def session(self, *, renew: bool = False) -> PubSubSession:
        if renew or self._session is None:
            self._session = self._session_for(renew)
        return self._session

    def _unary(self, method: str, topic: str, call: Callable[[PubSubSession], object]) -> object:
        """One unary call; an UNAUTHENTICATED answer renews the session once and sends the call again."""
        for renewed in (False, True):
            try:
                return call(self.session(renew=renewed))
            except grpc.RpcError as exc:
                error = translate(exc, method, topic)
                if not renewed and isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    log.info("pubsub %s: session refused; fetching a new access token", method)
                    continue
                raise error from exc
        raise AssertionError("unreachable")

    def get_topic(self, topic: str) -> pb.TopicInfo:
        """The topic's info; ConfigError when it does not exist or cannot be subscribed to."""
        info = self._unary("GetTopic", topic, lambda s: self._stub.GetTopic(pb.TopicRequest(topic_name=topic),
                                                                            metadata=s.metadata(), timeout=30))
        assert isinstance(info, pb.TopicInfo)
        if not info.can_subscribe:
            raise ConfigError([ConfigProblem("salesforce.cdc_topic", f"the API user may not subscribe to {topic!r}")])
        return info

    def schema(self, schema_id: str, topic: str = "") -> EventSchema:
        """The event schema with this id (GetSchema once per id; schemas never change under an id)."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        info = self._unary("GetSchema", topic, lambda s: self._stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                                                              metadata=s.metadata(), timeout=30))
        assert isinstance(info, pb.SchemaInfo)
        self.schema_fetches += 1
        schema = EventSchema.from_json(schema_id, info.schema_json)
        self._schemas[schema_id] = schema
        return schema

    def subscribe(self, topic: str, *, replay_id: bytes | None, num_requested: int, stop: threading.Event) -> Subscription:
        """Open a stream after replay_id (CUSTOM), or at the tip (LATEST) when there is none."""
        preset = pb.ReplayPreset.CUSTOM if replay_id else pb.ReplayPreset.LATEST
        first = pb.FetchRequest(topic_name=topic, replay_preset=preset, replay_id=replay_id or b"", num_requested=num_requested)
        return Subscription(self._stub, self.session(), first, stop=stop, monotonic=self._monotonic, idle_timeout=self._idle_timeout)

    def decode(self, event: pb.ConsumerEvent, topic: str = "") -> ChangeEvent:
        """A ConsumerEvent → ChangeEvent, fetching its schema on first sight."""
        return decode_event(self.schema(event.event.schema_id, topic), event.event.payload, event.replay_id)
