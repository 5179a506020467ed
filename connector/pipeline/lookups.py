"""Account and contact matching's reads: key by key, or the whole table once (an index), whichever counting says costs less."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from connector.adapters.base import CrmAdapter, IndexRead, ReadsLookupIndexes
from connector.core.models import Account

T = TypeVar("T")

# How old an answer may be: an account (or contact) owner changed in the CRM reaches routing within this
# time. Key-by-key answers are re-used this long too, as they always were.
LOOKUP_MAX_AGE = timedelta(minutes=10)
PURGE_AT = 10_000  # key-by-key answers kept before the expired ones are dropped


@dataclass
class LookupIndex(Generic[T]):
    """One whole table (accounts by domain or contact owners by email) as last read, and what reading it costs."""

    entries: Mapping[str, T] | None = None
    read_at: datetime | None = None
    pages: int | None = None  # calls one whole read takes (None: not probed yet)
    lookups: int = 0  # key-by-key look-ups made since the table was last read or probed (each ≥ 1 call)

    def is_fresh(self, now: datetime, max_age: timedelta) -> bool:
        return self.entries is not None and self.read_at is not None and now < self.read_at + max_age


@dataclass
class LookupStats:
    """Calls spent, for `bench calls` and logs: whole-table reads and key-by-key look-ups."""

    index_calls: int = 0
    index_reads: int = 0
    key_lookups: int = 0


@dataclass
class LookupCache:
    """A CRM runtime's account / contact answers across the batches (and, in the service, the runs) it serves.

    For each table the rule is ski rental: probe the table once (its first page says how many pages the
    whole table takes — a table of one page is then already read); then look keys up batch by batch and,
    once those look-ups reach the table's page count, read the whole table instead and answer every later
    batch from it until it is LOOKUP_MAX_AGE old. A run so never spends much more than twice the cheaper
    way, whatever the ratio of accounts to leads. Thread-safe: concurrent batches wait for one read.
    """

    max_age: timedelta = LOOKUP_MAX_AGE
    by_domain: dict[str, tuple[datetime, Account | None]] = field(default_factory=dict)  # key-by-key answers, valid until
    accounts_index: LookupIndex[Account] = field(default_factory=LookupIndex)
    contacts_index: LookupIndex[str] = field(default_factory=LookupIndex)
    stats: LookupStats = field(default_factory=LookupStats)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def accounts(self, adapter: CrmAdapter, domains: Iterable[str], now: datetime) -> dict[str, Account]:
        """The accounts of these (lower-case, non-free-mail) domains; unknown domains left out."""
        wanted = set(domains)
        with self._lock:
            index = self._index(self.accounts_index, adapter, now, lambda a, pages: a.account_index(pages))
            if index is not None:
                self.by_domain.clear()  # the whole table answers from now on: key-by-key answers are not kept
                return {d: account for d in wanted if (account := index.get(d)) is not None}
            if len(self.by_domain) >= PURGE_AT:
                # Memory stays bounded by the domains seen within max_age, not by every domain of a long run.
                self.by_domain = {d: answer for d, answer in self.by_domain.items() if answer[0] > now}
            missing = sorted(d for d in wanted if d not in self.by_domain or self.by_domain[d][0] <= now)
            if missing:
                found = adapter.find_accounts(missing)
                self._looked_up(self.accounts_index)
                for domain in missing:
                    self.by_domain[domain] = (now + self.max_age, found.get(domain))
            return {d: account for d in wanted if (account := self.by_domain[d][1]) is not None}

    def contact_owners(self, adapter: CrmAdapter, emails: Iterable[str], now: datetime) -> dict[str, str]:
        """Owners of existing contacts with these (lower-case) emails; emails without an owned contact left out."""
        wanted = sorted(set(emails))
        if not wanted:
            return {}
        with self._lock:
            index = self._index(self.contacts_index, adapter, now, lambda a, pages: a.contact_index(pages))
            if index is not None:
                return {e: owner for e in wanted if (owner := index.get(e)) is not None}
            found = adapter.find_contacts_by_email(wanted)
            self._looked_up(self.contacts_index)
            return dict(found)

    def _looked_up(self, index: LookupIndex[T]) -> None:
        index.lookups += 1
        self.stats.key_lookups += 1

    def _index(
        self, index: LookupIndex[T], adapter: CrmAdapter, now: datetime,
        read: Callable[[ReadsLookupIndexes, int], IndexRead[T]],
    ) -> Mapping[str, T] | None:
        """The table when it is fresh or reading it now costs no more than the key look-ups it replaces; else None."""
        if index.is_fresh(now, self.max_age):
            return index.entries
        if not isinstance(adapter, ReadsLookupIndexes):
            return None
        budget = index.lookups + 1  # the look-up about to be made counts
        if index.pages is not None and index.pages > budget:
            return None
        # Never probed: read on only if the whole table fits the budget. Probed and due: read it all, even if it grew.
        done = read(adapter, budget if index.pages is None else 2 * index.pages + budget)
        self.stats.index_calls += done.calls
        index.pages = done.pages
        if done.entries is None:
            index.lookups = done.calls  # the probe was spent like a look-up
            return None
        self.stats.index_reads += 1
        index.entries, index.read_at, index.lookups = done.entries, now, 0
        return index.entries
