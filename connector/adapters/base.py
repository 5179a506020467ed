"""The CrmAdapter Protocol: what the pipeline needs from a CRM, and nothing CRM-specific."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from connector.core.models import Account, Crm, FetchPage, Lead, Owner, Patch, WriteResult


@dataclass
class ApiCallCounter:
    """Counts API calls made by one adapter, by endpoint label (e.g. 'contacts.search')."""

    by_endpoint: dict[str, int] = field(default_factory=dict)

    def add(self, endpoint: str, n: int = 1) -> None:
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + n

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.by_endpoint.items()))


class CrmAdapter(Protocol):
    """A thin translator between one CRM account and the common model.

    Cursors are opaque strings owned by the adapter; the pipeline stores the cursor of a page
    only after every lead of that page is durably handled. Adapters raise only
    `connector.core.errors` classes; client-library exceptions never leave them.
    """

    crm: Crm
    object_type: str
    calls: ApiCallCounter
    write_batch_size: int  # most records one write call carries; the outbox is flushed in whole batches of it

    def bootstrap(self) -> None:
        """Check (and where allowed create) the fields the connector writes; raise ConfigError if unusable."""

    def fetch_changed(self, cursor: str | None) -> Iterator[FetchPage]:
        """Leads changed since `cursor` (None = everything), page by page, each page with its resume cursor."""

    def fetch_all(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Every lead (backfill), page by page, resumable from the cursor of the last handled page."""

    def fetch_archived(self, cursor: str | None = None) -> Iterator[FetchPage]:
        """Deletions the changed stream cannot see (HubSpot archive doesn't bump modified dates); pages carry deleted_ids."""

    def fetch_by_ids(self, ids: Sequence[str]) -> list[Lead]:
        """Re-read leads by id (after a webhook / change event); missing ids are left out."""

    def fetch_owners(self) -> list[Owner]:
        """All owners / users / queues, active and not (is_active tells)."""

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Existing companies / accounts by email domain (lower-case domain -> account)."""

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing contacts by email (lower-case email -> owner id), for duplicate-contact routing."""

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """Write patches in as few calls as the CRM allows; one WriteResult per patch, in order.

        `fence`, when given, is asked right before each request leaves (after its rate-limit wait)
        which of that request's patches may still go; the others are not sent and come back as
        retryable CLAIM_LOST results. A request that failed ambiguously (it may have been applied) is
        not sent again in the same call: its patches come back retryable, to be re-read first.
        """


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
