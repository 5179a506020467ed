"""The Salesforce adapter: Leads ⇄ the common model through simple-salesforce, errors translated at the boundary.

The adapter itself normalizes records and looks up owners, accounts, contacts and leads by key; the rest lives
beside it, a file per idea: `auth` (tokens), `client` (the guarded, retried call, describe and paged queries),
`errors` (classification), `fields` (the field map), `soql` (query text), `streams` (fetch with cursors),
`write` (Collections updates), `bootstrap` (the field check) and `cdc/` (Change Data Capture over the Pub/Sub API).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from connector.adapters.base import (
    ApiCallCounter,
    CallGuard,
    CallPolicy,
    IndexRead,
    NoGuard,
    ReadsThrough,
    WriteFence,
    chunks,
    unique_lower,
)
from connector.adapters.salesforce import bootstrap, soql, write
from connector.adapters.salesforce.auth import SalesforceToken
from connector.adapters.salesforce.client import SalesforceClient
from connector.adapters.salesforce.fields import CRM, OBJECT, lead_from_record, merged_specs, website_domain
from connector.adapters.salesforce.streams import SalesforceStreams
from connector.canonical import Canonical, CanonicalSettings, FieldReader, FieldSource, ParseStats
from connector.adapters.salesforce.write import COLLECTION_UPDATE_MAX
from connector.config import SalesforceSettings
from connector.core.clock import Clock, SystemClock
from connector.core.models import Account, Crm, Lead, Owner, Patch, WriteResult

log = logging.getLogger("connector.adapters.salesforce")

# Values per IN list (leads, parent accounts): keeps the GET query URL far below the ~16 k limit.
IN_VALUES_MAX = 200
# Account and contact look-ups: as many values as the URL budget holds (SOQL text may be 100,000 characters,
# the GET URL binds first).
IN_LIST_MAX = 2_000
ACCOUNT_FIELDS = ("Id", "Name", "Website", "OwnerId", "ParentId")
# A query travels in the GET URL; URI + headers may not pass 16,384 bytes (414 / 431)
# [crm-behaviour: Salesforce request URI: 16,384 bytes]. Queries
# built from caller values (emails) are split to stay within half of it, leaving room for the path and headers.
QUERY_URL_BUDGET = 8_000
# Query page size must be 200..2,000 (Sforce-Query-Options batchSize) [crm-behaviour: Salesforce query pages: 200 to 2,000 rows].
BATCH_SIZE_RANGE = (200, 2000)


class SalesforceAdapter(ReadsThrough):
    """One Salesforce org's Leads; satisfies connector.adapters.base.CrmAdapter.

    Fetches go to its streams (ReadsThrough); writes to `write`; the start-up check to `bootstrap`.
    """

    crm: Crm = CRM
    _streams: SalesforceStreams
    object_type = OBJECT
    write_batch_size = COLLECTION_UPDATE_MAX  # records per call [crm-behaviour: Salesforce sObject Collections: 200 updates, 2,000 ids]

    def __init__(
        self, settings: SalesforceSettings, *, guard: CallGuard | None = None, clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None, grade_options: Sequence[str] = ("hot", "warm", "cold"), max_attempts: int = 5,
        query_batch_size: int | None = None, canonical: CanonicalSettings | None = None,
    ) -> None:
        if query_batch_size is not None and not BATCH_SIZE_RANGE[0] <= query_batch_size <= BATCH_SIZE_RANGE[1]:
            raise ValueError(f"query_batch_size must be within {BATCH_SIZE_RANGE}, got {query_batch_size}")
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._policy = CallPolicy("salesforce", guard or NoGuard(), sleep or self._clock.sleep, max_attempts, log)
        self.calls: ApiCallCounter = self._policy.calls
        self._grade_options = tuple(grade_options)
        self._client = SalesforceClient(settings, policy=self._policy, clock=self._clock, query_batch_size=query_batch_size)
        # Every record read is counted here (parsed, empty, unparsed by value); the run reports it once.
        self._reader = FieldReader(merged_specs(settings.fields), Canonical(canonical), ParseStats())
        # `normalize` is looked up on each record, so a test may replace it on the instance.
        self._streams = SalesforceStreams(self._client, settings, self._clock, lambda record: self.normalize(record))

    def close(self) -> None:
        """Release connection pools."""
        self._client.close()

    def session(self, *, renew: bool = False) -> SalesforceToken:
        """The access token, instance URL and org id the REST calls use (renew: fetch a new token first).

        The Pub/Sub API subscriber authenticates its gRPC calls with this same session [crm-behaviour: Salesforce Pub/Sub API calls].
        """
        return self._client.session(renew=renew)

    def normalize(self, record: Mapping[str, Any]) -> Lead:
        """A Lead record from SOQL or Collections retrieve → Lead. Unparseable values become None and are counted
        in `parse_stats` (reported once per run)."""
        return lead_from_record(record, self.settings, self._reader)

    @property
    def parse_stats(self) -> ParseStats:
        """What every record normalized since this adapter was made (or since reset()) parsed to, by field."""
        return self._reader.stats

    def field_sources(self) -> list[FieldSource]:
        """Each mapped field's Lead field, its describe type and any mismatch with its parser (describe is read once)."""
        return bootstrap.field_sources(self._client.lead_fields(), self._reader.specs)

    def schema_properties(self) -> Mapping[str, Mapping[str, Any]]:
        """Every Lead field by API name, as describe gives it (type, label, picklistValues); read once."""
        return self._client.lead_fields()

    def bootstrap(self) -> None:
        """Check (describe) that the fields the connector writes exist, are editable and hold our values."""
        bootstrap.bootstrap(self._client, self.settings, self._grade_options)
        bootstrap.warn_mismatches(self.field_sources(), self.settings.fields)

    def fetch_owners(self) -> list[Owner]:
        """Users (IsActive tells) and lead queues (Group Type = 'Queue', prefix 00G).

        [crm-behaviour: Salesforce lead owners: users and queues]
        """
        owners = [
            Owner(CRM, str(u["Id"]), u.get("Email"), str(u.get("Name") or ""), is_active=bool(u.get("IsActive")))
            for u in self._client.records(soql.select(("Id", "Email", "Name", "IsActive"), "User", order_by=("Id",)))
        ]
        queue_query = soql.select(("Id", "Name", "Email"), "Group", f"Type = {soql.quote('Queue')}", ("Id",))
        owners += [Owner(CRM, str(g["Id"]), g.get("Email"), str(g.get("Name") or ""), is_active=True, is_queue=True)
                   for g in self._client.records(queue_query)]
        return owners

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Accounts whose Website's host is one of the domains (email-domain matching is not built in).

        `Website LIKE '%domain%'` terms, as many per query as the URL budget holds
        [crm-behaviour: Salesforce has no email-domain account matching] [crm-behaviour: Salesforce request URI: 16,384 bytes].
        """
        wanted = unique_lower(domains)
        found: dict[str, dict[str, Any]] = {}
        for query, chunk in like_queries(wanted):
            for account in self._client.records(query):
                domain = website_domain(account.get("Website"))
                # LIKE '%acme.example%' also matches notacme.example: keep exact host matches only,
                # the oldest account (lowest Id) per domain.
                if domain is not None and domain in chunk and domain not in found:
                    found[domain] = account
        return self._accounts(found, {})

    def account_index(self, max_pages: int) -> IndexRead[Account]:
        """Every Account with a Website, by its host: the answers find_accounts gives for every domain, in
        ⌈accounts / 2,000⌉ query pages; None (after the first page) when that is more than `max_pages`."""
        query = soql.select(ACCOUNT_FIELDS, "Account", "Website != null", ("Id",))
        rows, read = self._index_rows(query, max_pages)
        if rows is None:
            return IndexRead(None, read.pages, read.calls)
        found: dict[str, dict[str, Any]] = {}
        for account in rows:  # in Id order: the first account per host is the oldest, as find_accounts keeps it
            domain = website_domain(account.get("Website"))
            if domain is not None and domain not in found:
                found[domain] = account
        owners = {str(a["Id"]): a.get("OwnerId") for a in rows}
        missing = {str(a["ParentId"]) for a in found.values() if a.get("ParentId")} - set(owners)
        # A parent without a Website is not in the index: read those few by id.
        return IndexRead(self._accounts(found, owners), read.pages, read.calls + math.ceil(len(missing) / IN_VALUES_MAX))

    def _accounts(self, found: Mapping[str, dict[str, Any]], owners: Mapping[str, str | None]) -> dict[str, Account]:
        """Accounts by domain with their parent's owner; parents not in `owners` (id → OwnerId) are queried."""
        parent_ids = sorted({str(a["ParentId"]) for a in found.values() if a.get("ParentId")} - set(owners))
        parent_owner: dict[str, str | None] = dict(owners)
        for chunk in chunks(parent_ids, IN_VALUES_MAX):
            query = soql.select(("Id", "OwnerId"), "Account", f"Id IN {soql.in_list(chunk)}")
            parent_owner.update({str(p["Id"]): p.get("OwnerId") for p in self._client.records(query)})
        return {
            domain: Account(CRM, str(a["Id"]), domain, a.get("Name"), a.get("OwnerId"),
                            str(a["ParentId"]) if a.get("ParentId") else None,
                            parent_owner.get(str(a["ParentId"])) if a.get("ParentId") else None)
            for domain, a in found.items()
        }

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing Contacts by email → their OwnerId (duplicate-contact routing); IN lists sized to the URL budget."""
        owners: dict[str, str] = {}

        def render(values: str) -> str:
            return soql.select(("Id", "Email", "OwnerId"), "Contact", f"Email IN {values}", ("Id",))

        for query in soql.split_in(unique_lower(emails), render, max_values=IN_LIST_MAX, max_url_length=QUERY_URL_BUDGET):
            _add_contact_owners(owners, self._client.records(query))
        return owners

    def contact_index(self, max_pages: int) -> IndexRead[str]:
        """Every Contact with an Email → its OwnerId, as find_contacts_by_email answers; None past `max_pages`."""
        rows, read = self._index_rows(soql.select(("Id", "Email", "OwnerId"), "Contact", "Email != null", ("Id",)), max_pages)
        if rows is None:
            return IndexRead(None, read.pages, read.calls)
        owners: dict[str, str] = {}
        _add_contact_owners(owners, rows)
        return IndexRead(owners, read.pages, read.calls)

    def _index_rows(self, query: str, max_pages: int) -> tuple[list[dict[str, Any]] | None, IndexRead[None]]:
        """Every row of `query` when its pages (from the first page's totalSize) are ≤ max_pages, else None after one page."""
        rows: list[dict[str, Any]] = []
        pages = calls = 0
        for records, done, total in self._client.pages(query):
            calls += 1
            rows.extend(records)
            pages = pages or max(1, math.ceil(total / max(len(records), 1)))
            if not done and pages > max_pages:
                return None, IndexRead(None, pages, calls)
        return rows, IndexRead(None, pages, calls)

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]:
        """Leads whose Email is one of `emails` (SOQL compares text case-insensitively), normalized as fetch does.

        `SELECT <the fetch fields> FROM Lead WHERE Email IN (...) AND (<lead_filter>)`: the same leads
        the sync would see; `every_lead` drops the lead_filter (erasure must also reach converted
        leads). Values quoted by soql, split so every query URL stays within budget. Unknown emails
        are left out; a record that cannot be read is logged and left out.
        """
        wanted = unique_lower(emails)
        if not wanted:
            return []
        fields = self._streams.select_fields()

        def render(values: str) -> str:
            where = f"Email IN {values}" if every_lead else self._streams.where(f"Email IN {values}", include_deleted=False)
            return soql.select(fields, OBJECT, where, ("Id",))

        leads: dict[str, Lead] = {}
        for query in soql.split_in(wanted, render, max_values=IN_VALUES_MAX, max_url_length=QUERY_URL_BUDGET):
            for records, _ in self._client.stream(query, include_deleted=False):
                page = self._streams.page(records, "")
                for rejection in page.rejected:
                    log.warning("salesforce Lead %s: found by email but unreadable (%s); left out", rejection.record_id, rejection.code)
                for lead in page.leads:
                    leads.setdefault(lead.id, lead)
        return list(leads.values())

    def find_leads_by_owner(self, owner_ids: Sequence[str]) -> list[Lead]:
        """The leads under lead_filter that these users or queues own: `... WHERE OwnerId IN (...) AND (<lead_filter>)`.

        Ids are compared as given (Salesforce ids are case-sensitive); split so every query URL stays within budget.
        """
        wanted = list(dict.fromkeys(i for i in owner_ids if i))
        if not wanted:
            return []
        fields = self._streams.select_fields()

        def render(values: str) -> str:
            return soql.select(fields, OBJECT, self._streams.where(f"OwnerId IN {values}", include_deleted=False), ("Id",))

        leads: dict[str, Lead] = {}
        for query in soql.split_in(wanted, render, max_values=IN_VALUES_MAX, max_url_length=QUERY_URL_BUDGET):
            for records, _ in self._client.stream(query, include_deleted=False):
                for lead in self._streams.page(records, "").leads:
                    leads.setdefault(lead.id, lead)
        return list(leads.values())

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """sObject Collections PATCH, ≤200 records per call, allOrNone=false; one WriteResult per patch, in order."""
        return write.write(self._client, self.settings, self._policy, self._clock, patches, fence)


def _add_contact_owners(owners: dict[str, str], contacts: Iterable[Mapping[str, Any]]) -> None:
    """Contacts (in Id order) → lower-case email → OwnerId; the oldest contact per email wins."""
    for contact in contacts:
        email = str(contact.get("Email") or "").lower()
        if email and contact.get("OwnerId") and email not in owners:
            owners[email] = str(contact["OwnerId"])


def like_queries(domains: Sequence[str]) -> Iterator[tuple[str, set[str]]]:
    """Account queries `Website LIKE '%d%' OR ...` covering `domains`, each within the URL budget, with their domains."""
    def render(terms: Sequence[str]) -> str:
        return soql.select(ACCOUNT_FIELDS, "Account", f"({' OR '.join(terms)})", ("Id",))

    fixed, separator = soql.url_length(render(["x"])) - 1, soql.url_length(" OR ")
    terms: list[str] = []
    chunk: set[str] = set()
    length = fixed
    for domain in domains:
        term = f"Website LIKE {soql.like_literal(domain, prefix='%', suffix='%')}"
        cost = soql.url_length(term) + (separator if terms else 0)
        if terms and length + cost > QUERY_URL_BUDGET:
            yield render(terms), chunk
            terms, chunk, length, cost = [], set(), fixed, cost - separator
        terms.append(term)
        chunk.add(domain)
        length += cost
    if terms:
        yield render(terms), chunk
