"""Account / contact matching's reads: key by key or the whole table, chosen by counting, same answers, bounded age."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from connector.adapters.base import IndexRead, ReadsLookupIndexes
from connector.core.models import Account, Lead
from connector.pipeline.lookups import LOOKUP_MAX_AGE, LookupCache
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.pipeline.stages import lookup_context

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class KeyLookups:
    """An adapter that can only look keys up (as the tests' fakes and older adapters): one call per look-up."""

    crm = "salesforce"
    object_type = "Lead"

    def __init__(self, accounts: int, *, page: int = 2000) -> None:
        self.table = {f"co{i}.example": Account("salesforce", f"001{i:05d}", f"co{i}.example", owner_id="005A") for i in range(accounts)}
        self.contacts = {f"p{i}@co{i}.example": "005C" for i in range(0, accounts, 2)}
        self.page = page
        self.calls: list[str] = []

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        self.calls.append("find_accounts")
        return {d: self.table[d] for d in domains if d in self.table}

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        self.calls.append("find_contacts_by_email")
        return {e: self.contacts[e] for e in emails if e in self.contacts}


class Indexed(KeyLookups):
    """An adapter that can also read the whole table, ⌈rows / page⌉ calls, stopping after the first page past max_pages."""

    def _read(self, table: Mapping[str, Any], kind: str, max_pages: int) -> IndexRead[Any]:
        pages = max(1, math.ceil(len(table) / self.page))
        calls = 1 if pages > max_pages else pages
        self.calls.extend([kind] * calls)
        return IndexRead(None if pages > max_pages else dict(table), pages, calls)

    def account_index(self, max_pages: int) -> IndexRead[Account]:
        return self._read(self.table, "account_index", max_pages)

    def contact_index(self, max_pages: int) -> IndexRead[str]:
        return self._read(self.contacts, "contact_index", max_pages)


def engine() -> EngineConfig:
    # lookup_context reads only these two fields of the compiled engine.
    return cast(EngineConfig, SimpleNamespace(account_matching=True, free_mail_domains=frozenset({"gmail.com"})))


def runtime(adapter: Any) -> CrmRuntime:
    return CrmRuntime(crm="salesforce", adapter=adapter, rules=cast(Any, None), reps=(), active_owner_ids=frozenset())


def leads(numbers: Iterable[int]) -> list[Lead]:
    return [Lead(crm="salesforce", object_type="Lead", id=f"00Q{i}", email=f"P{i}@co{i}.example") for i in numbers]


def test_a_one_page_table_is_read_once_and_answers_every_batch_until_it_is_too_old() -> None:
    adapter = Indexed(60)
    rt = runtime(adapter)
    for start in range(0, 100, 10):  # ten batches: 60 of the domains have an account, 40 do not
        accounts, owners = lookup_context(rt, [*leads(range(start, start + 10)), Lead("salesforce", "Lead", "x", email="a@gmail.com")],
                                          engine(), T0 + timedelta(seconds=start))
        assert sorted(accounts) == sorted(f"co{i}.example" for i in range(start, start + 10) if i < 60)
        assert owners == {f"p{i}@co{i}.example": "005C" for i in range(start, start + 10) if i < 60 and i % 2 == 0}
    assert adapter.calls == ["account_index", "contact_index"]
    lookup_context(rt, leads([1]), engine(), T0 + LOOKUP_MAX_AGE)
    assert adapter.calls[2:] == ["account_index", "contact_index"]  # too old: read again, once


def test_a_big_table_is_probed_once_then_read_when_the_key_look_ups_reach_its_page_count() -> None:
    adapter = Indexed(7000)  # 4 pages of 2,000
    rt = runtime(adapter)
    calls_per_batch = []
    for batch in range(8):
        before = len(adapter.calls)
        accounts, _ = cast(tuple[Mapping[str, Account], Any], lookup_context(rt, leads(range(batch * 50, batch * 50 + 50)), engine(), T0))
        assert sorted(accounts) == sorted(f"co{i}.example" for i in range(batch * 50, batch * 50 + 50))
        calls_per_batch.append([c for c in adapter.calls[before:] if "account" in c])
    assert calls_per_batch[0] == ["account_index", "find_accounts"]  # the probe (one page) counts, then the key look-up
    assert calls_per_batch[1] == ["find_accounts"]
    assert calls_per_batch[2] == ["account_index"] * 4  # probe + look-ups + this one reach 4 pages: the whole table
    assert calls_per_batch[3:] == [[]] * 5
    assert len([c for c in adapter.calls if "account" in c]) <= 2 * 4  # never more than twice the cheaper way


def test_without_the_index_capability_keys_are_looked_up_per_batch_and_reused_for_the_max_age() -> None:
    adapter = KeyLookups(60)
    assert not isinstance(adapter, ReadsLookupIndexes)
    rt = runtime(adapter)
    first, _ = lookup_context(rt, leads(range(0, 70)), engine(), T0)
    again, _ = lookup_context(rt, leads(range(0, 70)), engine(), T0 + LOOKUP_MAX_AGE - timedelta(seconds=1))
    assert first == again and len(first) == 60
    assert adapter.calls.count("find_accounts") == 1 and adapter.calls.count("find_contacts_by_email") == 2


def test_an_account_owner_changed_in_the_crm_reaches_routing_within_the_max_age() -> None:
    adapter = Indexed(60)
    rt = runtime(adapter)
    before, _ = lookup_context(rt, leads([3]), engine(), T0)
    adapter.table["co3.example"] = Account("salesforce", "00100003", "co3.example", owner_id="005NEW")
    still, _ = lookup_context(rt, leads([3]), engine(), T0 + LOOKUP_MAX_AGE - timedelta(seconds=1))
    after, _ = lookup_context(rt, leads([3]), engine(), T0 + LOOKUP_MAX_AGE)
    assert (before["co3.example"].owner_id, still["co3.example"].owner_id, after["co3.example"].owner_id) == ("005A", "005A", "005NEW")


def test_free_mail_domains_are_never_looked_up_and_contacts_objects_skip_contact_matching() -> None:
    adapter = KeyLookups(10)
    adapter.object_type = "contacts"
    accounts, owners = lookup_context(runtime(adapter), [Lead("salesforce", "Lead", "x", email="a@gmail.com")], engine(), T0)
    assert (accounts, owners, adapter.calls) == ({}, {}, [])


def test_the_cache_is_shared_by_concurrent_batches() -> None:
    from concurrent.futures import ThreadPoolExecutor

    adapter = Indexed(60)
    cache = LookupCache()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda n: cache.accounts(adapter, [f"co{n}.example"], T0), range(40)))
    assert all(len(r) == 1 for r in results)
    assert adapter.calls == ["account_index"]


def test_key_by_key_answers_are_bounded_by_their_age_not_by_the_run(monkeypatch: Any) -> None:
    """A long run through many domains keeps only the answers still fresh once the cache is past its purge size."""
    monkeypatch.setattr("connector.pipeline.lookups.PURGE_AT", 50)
    adapter, cache = KeyLookups(accounts=10), LookupCache()
    for batch in range(10):  # 10 batches of 20 new domains, each two minutes after the last
        cache.accounts(adapter, [f"d{batch}-{i}.example" for i in range(20)], T0 + timedelta(minutes=2 * batch))
    # The run saw 200 domains; the answers of the first batches (over 10 minutes old) were dropped.
    assert 0 < len(cache.by_domain) < 200
    assert not any(domain.startswith("d0-") for domain in cache.by_domain)
    assert cache.accounts(adapter, ["co1.example"], T0 + timedelta(minutes=20)) == {"co1.example": adapter.table["co1.example"]}
