"""What every adapter shares: the CrmAdapter Protocol, the per-CRM descriptor, the call guard and write fence,
the guarded-retried call, the cursor codec, chunking and the batch-write outline. Nothing CRM-specific."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from connector.core.clock import Clock
from connector.core.errors import ConfigError, ConfigProblem, TransientError
from connector.core.models import Account, Crm, FetchPage, Lead, Owner, Patch, WriteResult
from connector.core.retrying import call_with_retries

T = TypeVar("T")
SettingsT = TypeVar("SettingsT")
SectionT = TypeVar("SectionT", bound="Section")
SectionIn = TypeVar("SectionIn", contravariant=True)


@dataclass
class ApiCallCounter:
    """Counts API calls made by one adapter, by endpoint label (e.g. 'contacts.search')."""

    by_endpoint: dict[str, int] = field(default_factory=dict)
    # The reader and writer threads of one run count through one adapter (pipeline/overlap.py).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, endpoint: str, n: int = 1) -> None:
        with self._lock:
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + n

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.by_endpoint.items()))


class Streams(Protocol):
    """An adapter's reads with cursors. Cursors are opaque strings owned by the adapter; the pipeline stores
    the cursor of a page only after every lead of that page is durably handled."""

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads changed since `cursor` (None = everything), page by page, each page with its resume cursor."""

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every lead (backfill), page by page, resumable from the cursor of the last handled page."""

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Deletions the changed stream cannot see (HubSpot archive doesn't bump modified dates); pages carry deleted_ids."""

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read leads by id (after a webhook / change event); missing ids are left out."""


class Lookups(Protocol):
    """An adapter's reads by key, for routing."""

    def fetch_owners(self) -> list[Owner]:
        """All owners / users / queues, active and not (is_active tells)."""

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Existing companies / accounts by email domain (lower-case domain -> account)."""

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing contacts by email (lower-case email -> owner id), for duplicate-contact routing."""


class CrmAdapter(Streams, Lookups, Protocol):
    """A thin translator between one CRM account and the common model: its streams, look-ups, write and start-up check.

    Adapters raise only `connector.core.errors` classes; client-library exceptions never leave them.
    """

    crm: Crm
    object_type: str
    calls: ApiCallCounter
    write_batch_size: int  # most records one write call carries; the outbox is flushed in whole batches of it

    def bootstrap(self) -> None:
        """Check (and where allowed create) the fields the connector writes; raise ConfigError if unusable."""

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """Write patches in as few calls as the CRM allows; one WriteResult per patch, in order.

        `fence`, when given, is asked right before each request leaves (after its rate-limit wait)
        which of that request's patches may still go; the others are not sent and come back as
        retryable CLAIM_LOST results. A request that failed ambiguously (it may have been applied) is
        not sent again in the same call: its patches come back retryable, to be re-read first.
        """


@runtime_checkable
class FindsLeadsByEmail(Protocol):
    """Optional capability: find leads by email (behaviour events keyed by email; erasure)."""

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]: ...


@runtime_checkable
class FindsLeadsByOwner(Protocol):
    """Optional capability: the open leads one of these owners holds (reps who left: their leads are routed again)."""

    def find_leads_by_owner(self, owner_ids: Sequence[str]) -> list[Lead]: ...


@dataclass(frozen=True, slots=True)
class IndexRead(Generic[T]):
    """A whole look-up table read from the CRM (`entries`), or None when it needs more than the pages allowed.

    `pages`: the calls the whole table takes (known from the first page's total), so the caller can
    weigh it against key-by-key look-ups; `calls`: what this read spent.
    """

    entries: Mapping[str, T] | None
    pages: int
    calls: int


@runtime_checkable
class ReadsLookupIndexes(Protocol):
    """Optional capability: read every account by domain / every owned contact by email in a few pages.

    The answers equal find_accounts / find_contacts_by_email for every key; a run reads the index
    once instead of one look-up per batch when counting says it is cheaper.
    """

    def account_index(self, max_pages: int) -> IndexRead[Account]: ...

    def contact_index(self, max_pages: int) -> IndexRead[str]: ...


@runtime_checkable
class Closeable(Protocol):
    """Optional capability: release connection pools."""

    def close(self) -> None: ...


class ReadsThrough:
    """The fetches of a CrmAdapter, handed on to the Streams each adapter builds in its __init__."""

    _streams: Streams

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        return self._streams.fetch_changed(cursor)

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        return self._streams.fetch_all(cursor)

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        return self._streams.fetch_archived(cursor)

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        return self._streams.fetch_by_ids(ids)


class Section(Protocol):
    """A CRM's own config section (`[hubspot]`, `[salesforce]`), as far as the descriptor reads it."""

    @property
    def enabled(self) -> bool: ...


class AdapterClass(Protocol[SectionIn]):
    """An adapter's constructor, as a descriptor calls it: the CRM's section plus the shared call machinery."""

    def __call__(self, settings: SectionIn, *, guard: CallGuard, clock: Clock,
                 sleep: Callable[[float], None], grade_options: Sequence[str], canonical: Any = None) -> CrmAdapter: ...


@dataclass(frozen=True, slots=True)
class CrmDescriptor(Generic[SettingsT, SectionT]):
    """Per-CRM knowledge the rest of the connector reads here instead of branching on the CRM's name.

    Each adapter package exposes one (`HUBSPOT`, `SALESFORCE`); `connector.adapters.crms` lists them.
    """

    crm: Crm
    title: str  # the CRM's name in messages
    object_type: str  # the object leads are read from when config names none
    section: Callable[[SettingsT], SectionT]  # the CRM's own config section
    stage_order: Callable[[SectionT], Sequence[str]]  # the configured order of the stages the connector writes
    adapter: Callable[[], AdapterClass[SectionT]]  # the adapter class, imported (with its client library) when asked for

    def is_enabled(self, settings: SettingsT) -> bool:
        return self.section(settings).enabled

    def stages(self, settings: SettingsT) -> tuple[str, ...]:
        """The stage order configured for this CRM (lifecycle stages, lead statuses)."""
        return tuple(self.stage_order(self.section(settings)))

    def open(self, settings: SettingsT, *, guard: CallGuard, clock: Clock, sleep: Callable[[float], None],
             grade_options: Sequence[str]) -> CrmAdapter:
        """This CRM's adapter for `settings` (with its `[canonical]` section: how values become canonical)."""
        return self.adapter()(self.section(settings), guard=guard, clock=clock, sleep=sleep, grade_options=grade_options,
                              canonical=getattr(settings, "canonical", None))


# (the patches one request is about to carry, now) -> for each, whether it may still be sent
WriteFence = Callable[[Sequence[Patch], datetime], Sequence[bool]]
CLAIM_LOST = "CLAIM_LOST"


def claim_lost(patch: Patch) -> WriteResult:
    """A patch the fence held back: another replica holds its outbox row now."""
    return WriteResult(patch.crm, patch.object_type, patch.record_id, ok=False, retryable=True,
                       error_code=CLAIM_LOST, message="another worker holds this write")


def maybe_applied(patch: Patch, error: Exception) -> WriteResult:
    """A patch whose request failed ambiguously (5xx, lost connection): back to the outbox, re-read before a resend."""
    return WriteResult(patch.crm, patch.object_type, patch.record_id, ok=False, retryable=True,
                       error_code="AMBIGUOUS_FAILURE", message=f"{error}; the write may have been applied: re-read before retrying")


class CallGuard(Protocol):
    """What an adapter consults around every API call: the shared rate limiter and daily budget.

    `before` blocks until the call may go (or raises BudgetExhaustedError for writes over budget);
    `after` feeds back what the CRM said (status, usage headers) so every replica's view is corrected.
    """

    def before(self, endpoint: str, kind: str) -> None:
        """kind is 'read', 'search' or 'write'."""

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None: ...


class NoGuard:
    """A CallGuard that never waits: tests of request shapes, and the sandbox demo's first cut."""

    def before(self, endpoint: str, kind: str) -> None:
        return None

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        return None


@dataclass
class CallPolicy:
    """How an adapter's calls go out: counted, behind the shared guard, retried by the one retry policy."""

    crm: str
    guard: CallGuard
    sleep: Callable[[float], None]
    max_attempts: int
    log: logging.Logger
    calls: ApiCallCounter = field(default_factory=ApiCallCounter)

    def retried(self, attempt: Callable[[], T], *, retry_on: type[TransientError] = TransientError) -> T:
        """Run `attempt` (one guarded call) under the one retry policy; `retry_on` narrows what is retried."""
        return call_with_retries(attempt, sleep=self.sleep, max_attempts=self.max_attempts,
                                 on_retry=self._on_retry, retry_on=retry_on)

    def _on_retry(self, exc: BaseException, wait_seconds: float) -> None:
        self.log.info("%s; retrying in %.1f s", exc, wait_seconds)

    def network_error(self, endpoint: str, exc: BaseException) -> TransientError:
        """No HTTP answer (timeout, reset, refused): retried like a 5xx. Names the host and the cause, never the
        exception's text (it can carry a URL's query)."""
        origin, cause = unreachable(exc)
        return TransientError(f"{self.crm} {endpoint}: could not reach {origin or 'the CRM'}: {cause}", crm=self.crm, endpoint=endpoint)


def unreachable(exc: BaseException) -> tuple[str | None, str]:
    """(scheme://host:port, cause in words) of a request that got no HTTP answer, read from the exception chain.

    urllib3 raises MaxRetryError(pool, reason=NewConnectionError … from ConnectionRefusedError); requests wraps
    that again. Types are matched, never messages."""
    origin: str | None = None
    cause = None
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        origin = origin or _origin_of(e)
        cause = cause or _cause_of(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args[:1]]
    return origin, cause or f"no answer ({type(exc).__name__})"


def _origin_of(exc: BaseException) -> str | None:
    pool = getattr(exc, "pool", None)  # urllib3's connection pool
    if pool is not None and getattr(pool, "host", None):
        return f"{getattr(pool, 'scheme', 'http')}://{pool.host}" + (f":{pool.port}" if getattr(pool, "port", None) else "")
    url = getattr(getattr(exc, "request", None), "url", None)  # requests' PreparedRequest
    if isinstance(url, str) and "://" in url:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return None


def _cause_of(exc: BaseException) -> str | None:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection reset by the server"
    if isinstance(exc, socket.gaierror) or type(exc).__name__ == "NameResolutionError":
        return "host name not found"
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    return None


@dataclass(frozen=True, slots=True)
class CursorCodec:
    """One CRM's cursors: opaque, compact, key-sorted JSON `{"v": 1, …}`, safe to store after their page.

    `tags_stream`: the cursor names the stream it belongs to, and a cursor of another stream is refused.
    """

    crm: str
    title: str
    tags_stream: bool = False

    def encode(self, stream: str, state: Mapping[str, Any]) -> str:
        head: dict[str, Any] = {"v": 1, "stream": stream} if self.tags_stream else {"v": 1}
        return json.dumps({**head, **state}, sort_keys=True, separators=(",", ":"))

    def decode(self, cursor: str | None, stream: str) -> dict[str, Any]:
        """The stored state ({} for no cursor); ConfigError naming `cursor.<crm>.<stream>` when it is not ours."""
        if not cursor:
            return {}
        try:
            state = json.loads(cursor)
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("v") != 1 or (self.tags_stream and state.get("stream") != stream):
            what = "stream and version" if self.tags_stream else "version"
            raise self.problem(stream, f"stored cursor is not a {self.title} cursor of this {what}; reset it")
        return state

    def problem(self, stream: str, message: str) -> ConfigError:
        return ConfigError([ConfigProblem(f"cursor.{self.crm}.{stream}", message)])


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items (a CRM's per-request limit)."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def unique_lower(values: Iterable[str]) -> list[str]:
    """Emails or domains as look-ups send them: stripped, lower-cased, de-duplicated, sorted; blanks dropped."""
    return sorted({v.strip().lower() for v in values if v and v.strip()})


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """A CRM value normalize could not parse: the attribute became None. The value itself is not kept (personal data)."""

    name: str  # the CRM property or field
    expected: str  # what kind of value it should hold


@dataclass(frozen=True, slots=True)
class PendingWrite(Generic[T]):
    """One non-empty patch on its way out: its position in the write call and what the request carries for it."""

    index: int
    patch: Patch
    payload: T


def written(patch: Patch) -> WriteResult:
    """A patch that needed no call (nothing to change) or that the CRM accepted."""
    return WriteResult(patch.crm, patch.object_type, patch.record_id, ok=True)


def write_in_batches(
    patches: Sequence[Patch],
    *,
    prepare: Callable[[Patch], T],
    batches: Callable[[list[PendingWrite[T]]], Iterable[list[PendingWrite[T]]]],
    send: Callable[[list[PendingWrite[T]]], Mapping[int, WriteResult]],
) -> list[WriteResult]:
    """The outline of every adapter's write: empty patches succeed without a call, the others are prepared
    (CRM field names and values), cut into requests by `batches` and sent by `send`; one result per patch, in order."""
    results: dict[int, WriteResult] = {}
    pending: list[PendingWrite[T]] = []
    for index, patch in enumerate(patches):
        if patch.is_empty:
            results[index] = written(patch)
        else:
            pending.append(PendingWrite(index, patch, prepare(patch)))
    for batch in batches(pending):
        results.update(send(batch))
    return [results[index] for index in sorted(results)]


def fenced(fence: WriteFence | None, batch: list[PendingWrite[T]], now: datetime) -> list[PendingWrite[T]]:
    """The part of a batch the fence still lets go, asked right before the request leaves.

    A replica that waited past its claim must not send what another replica now holds
    [architecture: A person's choice wins].
    """
    if fence is None:
        return list(batch)
    allowed = fence([item.patch for item in batch], now)
    return [item for item, ok in zip(batch, allowed, strict=True) if ok]


def unsent(batch: Sequence[PendingWrite[T]], sent: Sequence[PendingWrite[T]], error: Exception) -> dict[int, WriteResult]:
    """A request that failed ambiguously: what it carried may have been applied, what the fence held back was not."""
    carried = {item.index for item in sent}
    return {item.index: maybe_applied(item.patch, error) if item.index in carried else claim_lost(item.patch) for item in batch}
