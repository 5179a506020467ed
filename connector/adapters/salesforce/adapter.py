"""The Salesforce adapter: Leads ⇄ the common model through simple-salesforce, errors translated at the boundary.

The adapter itself normalizes records and looks up owners, accounts, contacts and leads by key; the rest lives
beside it, a file per idea: `auth` (tokens), `client` (the guarded, retried call, describe and paged queries),
`errors` (classification), `fields` (the field map), `soql` (query text), `streams` (fetch with cursors),
`write` (Collections updates), `bootstrap` (the field check) and `cdc/` (Change Data Capture over the Pub/Sub API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from connector.adapters.base import ApiCallCounter, CallGuard, CallPolicy, NoGuard, ReadsThrough, WriteFence, chunks, unique_lower
from connector.adapters.salesforce import bootstrap, soql, write
from connector.adapters.salesforce.auth import SalesforceToken
from connector.adapters.salesforce.client import SalesforceClient
from connector.adapters.salesforce.fields import CRM, OBJECT, lead_from_record, website_domain
from connector.adapters.salesforce.streams import SalesforceStreams
from connector.adapters.salesforce.write import COLLECTION_UPDATE_MAX
from connector.config import SalesforceSettings
from connector.core.clock import Clock, SystemClock
from connector.core.models import Account, Crm, Lead, Owner, Patch, WriteResult

log = logging.getLogger("connector.adapters.salesforce")

# Values per IN list and LIKE terms per query: keeps the GET query URL far below the ~16 k limit.
IN_VALUES_MAX = 200
LIKE_TERMS_MAX = 20
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
        query_batch_size: int | None = None,
    ) -> None:
        if query_batch_size is not None and not BATCH_SIZE_RANGE[0] <= query_batch_size <= BATCH_SIZE_RANGE[1]:
            raise ValueError(f"query_batch_size must be within {BATCH_SIZE_RANGE}, got {query_batch_size}")
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._policy = CallPolicy("salesforce", guard or NoGuard(), sleep or self._clock.sleep, max_attempts, log)
        self.calls: ApiCallCounter = self._policy.calls
        self._grade_options = tuple(grade_options)
        self._client = SalesforceClient(settings, policy=self._policy, clock=self._clock, query_batch_size=query_batch_size)
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
        """A Lead record from SOQL or Collections retrieve → Lead. Unparseable values become None with a warning."""
        lead, warnings = lead_from_record(record, self.settings)
        for warning in warnings:
            # The value itself may be personal data: the field name is enough to find it.
            log.warning("salesforce Lead %s: field %s is not a valid %s; left empty", lead.id, warning.name, warning.expected)
        return lead

    def bootstrap(self) -> None:
        """Check (describe) that the fields the connector writes exist, are editable and hold our values."""
        bootstrap.bootstrap(self._client, self.settings, self._grade_options)

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

        [crm-behaviour: Salesforce has no email-domain account matching]
        """
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(unique_lower(domains), LIKE_TERMS_MAX):
            terms = " OR ".join(f"Website LIKE {soql.like_literal(d, prefix='%', suffix='%')}" for d in chunk)
            query = soql.select(("Id", "Name", "Website", "OwnerId", "ParentId"), "Account", f"({terms})", ("Id",))
            for account in self._client.records(query):
                domain = website_domain(account.get("Website"))
                # LIKE '%acme.example%' also matches notacme.example: keep exact host matches only,
                # the oldest account (lowest Id) per domain.
                if domain is not None and domain in chunk and domain not in found:
                    found[domain] = account
        parent_ids = sorted({str(a["ParentId"]) for a in found.values() if a.get("ParentId")})
        parent_owner: dict[str, str | None] = {}
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
        """Existing Contacts by email → their OwnerId (duplicate-contact routing)."""
        owners: dict[str, str] = {}
        for chunk in chunks(unique_lower(emails), IN_VALUES_MAX):
            query = soql.select(("Id", "Email", "OwnerId"), "Contact", f"Email IN {soql.in_list(chunk)}", ("Id",))
            for contact in self._client.records(query):
                email = str(contact.get("Email") or "").lower()
                if email and contact.get("OwnerId") and email not in owners:
                    owners[email] = str(contact["OwnerId"])
        return owners

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
