"""The Pub/Sub API client against the sandbox's gRPC server: auth metadata, errors, schema cache, flow control, replay, TLS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from connector.adapters.salesforce.cdc.client import (
    REPLAY_CORRUPTED,
    PubSubClient,
    PubSubSession,
    Subscription,
    error_code,
    is_replay_rejected,
    open_channel,
    translate,
)
from connector.adapters.salesforce.cdc.pubsub_api_pb2 import FetchResponse
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.core.clock import SystemClock
from connector.core.errors import AuthError, ConfigError, CrmApiError, TransientError
from connector.sandbox.pubsub import replay_bytes
from connector.sandbox.salesforce import SalesforceSandbox
from tests.cdc_fixtures import WAIT, cdc_settings

TOPIC = "/data/LeadChangeEvent"


class FakeCall(grpc.RpcError, grpc.Call):
    """A failed call as grpc raises it: a status code and trailing metadata."""

    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self._code, self._trailers = code, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def trailing_metadata(self) -> Any:
        return self._trailers

    def initial_metadata(self) -> Any:
        return ()

    def details(self) -> str:
        return ""

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


@pytest.mark.parametrize(("status", "trailer", "kind"), [
    (grpc.StatusCode.UNAUTHENTICATED, "sfdc.platform.eventbus.grpc.service.auth.error", AuthError),
    (grpc.StatusCode.PERMISSION_DENIED, None, AuthError),
    (grpc.StatusCode.NOT_FOUND, None, ConfigError),
    (grpc.StatusCode.UNAVAILABLE, None, TransientError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, None, TransientError),
    (grpc.StatusCode.INTERNAL, None, TransientError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, None, TransientError),
    (grpc.StatusCode.INVALID_ARGUMENT, REPLAY_CORRUPTED, CrmApiError),
    (grpc.StatusCode.FAILED_PRECONDITION, None, CrmApiError),
])
def test_translate_table(status: grpc.StatusCode, trailer: str | None, kind: type[Exception]) -> None:
    exc = FakeCall(status, (("error-code", trailer),) if trailer else ())
    assert type(translate(exc, "Subscribe", TOPIC)) is kind
    assert error_code(exc) == trailer


@pytest.mark.parametrize(("status", "code", "rejected"), [
    (grpc.StatusCode.INVALID_ARGUMENT, REPLAY_CORRUPTED, True),
    (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed", True),
    (grpc.StatusCode.INVALID_ARGUMENT, None, True),  # trailers dropped by a proxy
    (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid", False),
    (grpc.StatusCode.UNAVAILABLE, None, False),
])
def test_replay_rejection(status: grpc.StatusCode, code: str | None, rejected: bool) -> None:
    assert is_replay_rejected(status, code) is rejected


@pytest.fixture
def sandbox() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=5, leads=5, pubsub=True) as sb:
        yield sb


@pytest.fixture
def adapter(sandbox: SalesforceSandbox, tmp_path: Any) -> Iterator[SalesforceAdapter]:
    a = SalesforceAdapter(cdc_settings(f"sqlite:///{tmp_path / 's.db'}", sandbox).salesforce, clock=SystemClock())
    yield a
    a.close()


def make_client(target: str, session: Any, *, tls: bool = False, ca_file: str | None = None) -> PubSubClient:
    return PubSubClient(open_channel(target, tls=tls, ca_file=ca_file), session, monotonic=SystemClock().monotonic)


def session_of(adapter: SalesforceAdapter, renewals: list[bool] | None = None) -> Any:
    def session(renew: bool) -> PubSubSession:
        if renewals is not None:
            renewals.append(renew)
        token = adapter.session(renew=renew)
        assert token.org_id
        return PubSubSession(token.access_token, token.instance_url, token.org_id)
    return session


def take(sub: Subscription, events: int) -> list[FetchResponse]:
    """Read responses until `events` events arrived (keepalives are counted as responses too)."""
    out: list[FetchResponse] = []
    seen = 0
    for response in sub:
        out.append(response)
        seen += len(response.events)
        if seen >= events:
            return out
    return out


def test_metadata_and_topic(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    client = make_client(sandbox.pubsub_target, session_of(adapter))
    info = client.get_topic(TOPIC)
    assert info.can_subscribe and info.schema_id == sandbox.pubsub.schema_id and info.tenant_guid == sandbox.org_id
    with pytest.raises(ConfigError, match="salesforce.cdc_topic"):
        client.get_topic("/data/NoSuchChangeEvent")
    client.close()


def test_expired_token_is_renewed_once_then_refused(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    renewals: list[bool] = []
    client = make_client(sandbox.pubsub_target, session_of(adapter, renewals))
    client.get_topic(TOPIC)
    sandbox.expire_tokens()
    client.get_topic(TOPIC)  # UNAUTHENTICATED → a new token → the call succeeds
    assert renewals == [False, True]

    def bad(renew: bool) -> PubSubSession:
        return PubSubSession("00D!not-a-token", sandbox.instance_url, sandbox.org_id)

    with pytest.raises(AuthError, match="refused the session"):
        make_client(sandbox.pubsub_target, bad).get_topic(TOPIC)
    wrong_org = PubSubSession(adapter.session().access_token, sandbox.instance_url, "00D000000000999AAA")
    with pytest.raises(AuthError):
        make_client(sandbox.pubsub_target, lambda renew: wrong_org).get_topic(TOPIC)
    # 1 expired token + 2 (bad token, and again after the renewal) + 2 (wrong org, twice)
    assert sandbox.pubsub.calls["unauthenticated"] == 5


def test_flow_control_schema_cache_and_replay(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    client = make_client(sandbox.pubsub_target, session_of(adapter))
    stop = threading.Event()
    sub = client.subscribe(TOPIC, replay_id=None, num_requested=2, stop=stop)
    assert sandbox.pubsub.wait_for_streams(1, WAIT)
    ids = [sandbox.create_lead({"LastName": f"Flow{i}", "Company": "Flow Inc"}) for i in range(5)]
    first = take(sub, 2)
    assert sum(len(r.events) for r in first) == 2 and first[-1].pending_num_requested == 0
    sub.request(3)
    second = take(sub, 3)
    events = [client.decode(e, TOPIC) for r in first + second for e in r.events]
    assert [e.record_ids[0] for e in events] == ids and {e.change_type for e in events} == {"CREATE"}
    assert client.schema_fetches == 1 and sandbox.pubsub.calls["GetSchema"] == 1  # cached by schema id
    stop.set()
    assert list(sub) == []  # a stop ends the stream quietly

    # Resume after the second event: exactly the three after it.
    stop = threading.Event()
    resumed = client.subscribe(TOPIC, replay_id=events[1].replay_id, num_requested=10, stop=stop)
    again = [client.decode(e, TOPIC).record_ids[0] for r in take(resumed, 3) for e in r.events]
    assert again == ids[2:]
    stop.set()
    resumed.close()

    unknown = client.subscribe(TOPIC, replay_id=replay_bytes(sandbox.pubsub.latest_replay + 50), num_requested=1,
                               stop=threading.Event())
    with pytest.raises(CrmApiError) as refused:
        list(unknown)
    assert refused.value.code == REPLAY_CORRUPTED
    client.close()


def test_expired_replay_id_is_refused(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    client = make_client(sandbox.pubsub_target, session_of(adapter))
    stop = threading.Event()
    sub = client.subscribe(TOPIC, replay_id=None, num_requested=5, stop=stop)
    assert sandbox.pubsub.wait_for_streams(1, WAIT)
    sandbox.create_lead({"LastName": "Old", "Company": "Old Inc"})
    old = take(sub, 1)[-1].events[0].replay_id
    stop.set()
    sub.close()
    sandbox.retention_seconds = 0
    with pytest.raises(CrmApiError) as refused:
        list(client.subscribe(TOPIC, replay_id=old, num_requested=5, stop=threading.Event()))
    assert refused.value.code == REPLAY_CORRUPTED
    client.close()


def test_dropped_stream_is_a_transient_error(sandbox: SalesforceSandbox, adapter: SalesforceAdapter) -> None:
    client = make_client(sandbox.pubsub_target, session_of(adapter))
    sub = client.subscribe(TOPIC, replay_id=None, num_requested=5, stop=threading.Event())
    assert sandbox.pubsub.wait_for_streams(1, WAIT)
    sandbox.pubsub.drop_streams()
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        list(sub)
    client.close()


def test_tls_channel_with_the_ca_bundle() -> None:
    with SalesforceSandbox(seed=5, leads=2, pubsub=True, pubsub_tls=True) as sb:
        settings = cdc_settings("sqlite://", sb)
        adapter = SalesforceAdapter(settings.salesforce, clock=SystemClock())
        target = sb.pubsub_target.replace("127.0.0.1", "localhost")
        client = make_client(target, session_of(adapter), tls=True, ca_file=sb.ca_file)
        assert client.get_topic(TOPIC).can_subscribe
        client.close()
        untrusted = make_client(target, session_of(adapter), tls=True)  # system roots: the loopback certificate is unknown
        with pytest.raises(TransientError, match="UNAVAILABLE"):
            untrusted.get_topic(TOPIC)
        untrusted.close()
        adapter.close()
