"""The HubSpot adapter: contacts or Leads ⇄ the common model through hubspot-api-client, errors translated at the boundary.

The adapter itself normalizes records and looks up owners, companies, contacts and leads by key; the rest lives
beside it, a file per idea: `auth` (token and SDK client), `client` (the guarded, retried call), `errors`
(classification), `fields` (the field map), `streams` (fetch with cursors), `write` (batch updates) and
`bootstrap` (the property check).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from connector.adapters.hubspot import bootstrap, write
from connector.adapters.hubspot.client import (
    BATCH_SIZE,
    IN_VALUES_MAX,
    IN_VALUES_PER_SEARCH,
    LIST_PAGE_SIZE,
    SEARCH_LIMIT_MAX,
    HubSpotClient,
    next_after,
)
from connector.adapters.hubspot.fields import COMPANY_PROPERTIES, OBJECT_ID_PROPERTY, OWNER_PROPERTY, FieldMap, lead_from_record
from connector.adapters.hubspot.streams import HubSpotStreams
from connector.canonical import Canonical, CanonicalSettings, FieldReader, FieldSource, ParseStats
from connector.config import HubSpotSettings
from connector.core.clock import Clock, SystemClock
from connector.core.errors import ConnectorError, CrmApiError, TransientError
from connector.core.models import Account, Crm, Lead, Owner, Patch, WriteResult

log = logging.getLogger("connector.adapters.hubspot")


class HubSpotAdapter(ReadsThrough):
    """One HubSpot account's contacts (or Leads objects) as Leads; satisfies connector.adapters.base.CrmAdapter.

    Fetches go to its streams (ReadsThrough); writes to `write`; the start-up check to `bootstrap`.
    """

    crm: Crm = "hubspot"
    _streams: HubSpotStreams
    write_batch_size = BATCH_SIZE  # inputs per batch/update call [crm-behaviour: HubSpot batch calls take at most 100 inputs]

    def __init__(
        self, settings: HubSpotSettings, *, guard: CallGuard | None = None, clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None, grade_options: Sequence[str] = ("hot", "warm", "cold"), max_attempts: int = 5,
        canonical: CanonicalSettings | None = None,
    ) -> None:
        self.settings = settings
        self.object_type: str = settings.object_type
        self._clock: Clock = clock or SystemClock()
        self._policy = CallPolicy("hubspot", guard or NoGuard(), sleep or self._clock.sleep, max_attempts, log)
        self.calls: ApiCallCounter = self._policy.calls
        self._grade_options = tuple(grade_options)
        self.fields = FieldMap(
            object_type=settings.object_type,
            score_property=settings.score_property,
            grade_property=settings.grade_property,
            stage_property=settings.effective_stage_property,
            lead_status_property=settings.lead_status_property,
            extra_properties=dict(settings.extra_properties),
            specs=FieldMap.merged_specs(settings.fields),
        )
        # Every record read is counted here (parsed, empty, unparsed by value); the run reports it once.
        self._reader = FieldReader(self.fields.specs, Canonical(canonical), ParseStats())
        self._contact_properties: Mapping[str, Mapping[str, Any]] | None = None
        self._client = HubSpotClient(settings, policy=self._policy, clock=self._clock)
        # `normalize` is looked up on each record, so a test may replace it on the instance.
        self._streams = HubSpotStreams(self._client, self.fields, settings, self._clock, lambda record: self.normalize(record))

    def close(self) -> None:
        """Release the connection pools."""
        self._client.close()

    def _translate(self, status: int, headers: Mapping[str, str], raw_body: Any, endpoint: str) -> ConnectorError:
        return self._client.translate(status, headers, raw_body, endpoint)

    def normalize(self, record: Mapping[str, Any]) -> Lead:
        """A HubSpot object (`{"id", "properties": {name: str}, "archived"}`) → Lead.

        Unparseable values (e.g. numemployees "lots") never fail the record: the attribute becomes
        None and `parse_stats` counts the value (reported once per run).
        """
        return lead_from_record(record, self.fields, self._reader)

    @property
    def parse_stats(self) -> ParseStats:
        """What every record normalized since this adapter was made (or since reset()) parsed to, by field."""
        return self._reader.stats

    def field_sources(self) -> list[FieldSource]:
        """Each mapped field's contact property, its real type and any mismatch with its parser (read-only: one
        properties read when bootstrap has not run)."""
        return bootstrap.field_sources(self.schema_properties(), self.fields.specs)

    def schema_properties(self) -> Mapping[str, Mapping[str, Any]]:
        """Every contact property by name, as GET /crm/v3/properties/contacts describes it (type, label, options);
        read once, never created or changed."""
        if self._contact_properties is None:
            self._contact_properties = bootstrap.read_properties(self._client, "contacts")
        return self._contact_properties

    def portal_id(self) -> str | None:
        """The account's portal (hub) id, for record links; one GET /account-info/v3/details per adapter.

        [crm-behaviour: HubSpot record links need the portal id]
        """
        if not hasattr(self, "_portal_id"):
            api = self._client.apis.owners.api_client

            def details(**kw: Any) -> Any:
                return api.call_api("/account-info/v3/details", "GET", header_params={"Accept": "application/json"},
                                    response_types_map={}, auth_settings=["oauth2"], _return_http_data_only=True, **kw)

            self._portal_id: str | None = None
            try:
                body = self._client.call("account.details", "read", details).body
            except (CrmApiError, TransientError) as exc:  # links are a convenience: notifications go out without them
                log.warning("hubspot: could not read the portal id for record links: %s", exc)
                return None
            self._portal_id = str(body["portalId"]) if body.get("portalId") is not None else None
        return self._portal_id

    def bootstrap(self) -> None:
        """Check the score, grade and stage properties; create missing ones when allowed; ConfigError otherwise."""
        existing = bootstrap.bootstrap(self._client, self.settings, self._grade_options)
        # The field mapping reads contact properties (a Leads record carries its contact's).
        self._contact_properties = existing if self.object_type == "contacts" else None
        bootstrap.warn_mismatches(self.field_sources(), self.settings.fields)

    def fetch_owners(self) -> list[Owner]:
        """Active and archived (deactivated) owners; `hubspot_owner_id` takes the owner `id`, never userId.

        [crm-behaviour: HubSpot owners: assign by owner id]
        """
        owners: dict[str, Owner] = {}
        for archived in (False, True):
            after: str | None = None
            while True:
                response = self._client.call("owners.list", "read", self._client.apis.owners.get_page,
                                            limit=LIST_PAGE_SIZE, after=after, archived=archived)
                for raw in response.body.get("results") or []:
                    owner = Owner(
                        crm="hubspot",
                        id=str(raw["id"]),
                        email=raw.get("email") or None,
                        name=" ".join(p for p in (raw.get("firstName"), raw.get("lastName")) if p),
                        is_active=not (archived or raw.get("archived", False)),
                        is_queue=raw.get("type") == "QUEUE",
                    )
                    owners.setdefault(owner.id, owner)
                after = next_after(response.body)
                if not after:
                    break
        return list(owners.values())

    def find_accounts(self, domains: Iterable[str]) -> Mapping[str, Account]:
        """Companies by domain (HubSpot's company dedupe key), with their parent's owner for hierarchies.

        A search `domain IN [...]` in each of 5 filter groups: 500 domains a request
        [crm-behaviour: HubSpot search filters and sorting].
        """
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(unique_lower(domains), IN_VALUES_PER_SEARCH):
            _keep_companies(found, self._client.search_in("companies", "domain", chunk, list(COMPANY_PROPERTIES)))
        return self._accounts(found, {})

    def account_index(self, max_pages: int) -> IndexRead[Account]:
        """Every company with a domain, as find_accounts answers for each domain, in ⌈companies / 200⌉ searches;
        None (after the first page) when that is more than `max_pages`."""
        rows, read = self._index_rows("companies", ["domain"], list(COMPANY_PROPERTIES), max_pages)
        if rows is None:
            return read
        found: dict[str, dict[str, Any]] = {}
        _keep_companies(found, rows)
        by_id = {str(r["id"]): r for r in rows}
        missing = {p for c in found.values() if (p := (c.get("properties") or {}).get("hs_parent_company_id"))} - set(by_id)
        # A parent without a domain is not in the index: read those few by id.
        return IndexRead(self._accounts(found, by_id), read.pages, read.calls + math.ceil(len(missing) / BATCH_SIZE))

    def _accounts(self, found: Mapping[str, dict[str, Any]], known: Mapping[str, dict[str, Any]]) -> dict[str, Account]:
        """Companies by domain → Accounts with their parent's owner; parents not in `known` (id → company) are read."""
        parent_ids = sorted({p for c in found.values() if (p := (c.get("properties") or {}).get("hs_parent_company_id"))} - set(known))
        parents = {**known, **{str(r["id"]): r for r in self._client.batch_read("companies", parent_ids, list(COMPANY_PROPERTIES))}}
        accounts: dict[str, Account] = {}
        for domain, company in found.items():
            props = company.get("properties") or {}
            parent_id = props.get("hs_parent_company_id") or None
            parent = parents.get(parent_id or "")
            accounts[domain] = Account(
                crm="hubspot",
                id=str(company["id"]),
                domain=domain,
                name=props.get("name") or None,
                owner_id=props.get(OWNER_PROPERTY) or None,
                parent_id=parent_id,
                parent_owner_id=((parent or {}).get("properties") or {}).get(OWNER_PROPERTY) or None,
            )
        return accounts

    def find_contacts_by_email(self, emails: Iterable[str]) -> Mapping[str, str]:
        """Existing contacts' owners by lower-case email (duplicate-contact routing); unowned contacts left out."""
        owners: dict[str, str] = {}
        for chunk in chunks(unique_lower(emails), IN_VALUES_PER_SEARCH):
            _add_contact_owners(owners, self._client.search_in("contacts", "email", chunk, ["email", OWNER_PROPERTY]))
        return owners

    def contact_index(self, max_pages: int) -> IndexRead[str]:
        """Every owned contact with an email → its owner, as find_contacts_by_email answers; None past `max_pages`."""
        rows, read = self._index_rows("contacts", ["email", OWNER_PROPERTY], ["email", OWNER_PROPERTY], max_pages)
        if rows is None:
            return IndexRead(None, read.pages, read.calls)
        owners: dict[str, str] = {}
        _add_contact_owners(owners, rows)
        return IndexRead(owners, read.pages, read.calls)

    def _index_rows(
        self, object_type: str, present: list[str], properties: list[str], max_pages: int,
    ) -> tuple[list[dict[str, Any]] | None, IndexRead[Any]]:
        """Every record having the `present` properties when their pages (first page's total / 200) are ≤ max_pages."""
        rows: list[dict[str, Any]] = []
        pages = calls = 0
        for results, total in self._client.search_pages(object_type, present, properties):
            calls += 1
            rows.extend(results)
            pages = pages or max(1, math.ceil(total / SEARCH_LIMIT_MAX))
            if pages > max_pages and len(rows) < total:
                return None, IndexRead(None, pages, calls)
        return rows, IndexRead(None, pages, calls)

    def find_leads_by_email(self, emails: Sequence[str], *, every_lead: bool = False) -> list[Lead]:
        """Leads whose primary email is one of `emails` (any case), normalized as fetch normalizes them.

        A search `email IN [...]`, ≤100 values per request, values lower-cased: HubSpot's IN matches
        string values only in lower case [crm-behaviour: HubSpot search filters and sorting]. For the Leads object the email lives on
        the associated contact, so contacts are searched and their leads read through v4 associations.
        Unknown emails are left out; a record that cannot be read is logged and left out. Search
        index lag applies: a contact created seconds ago may not be found yet [crm-behaviour: HubSpot search index lag].
        `every_lead` is accepted for the shared signature: HubSpot reads have no lead filter to drop.
        """
        wanted = unique_lower(emails)
        if not wanted:
            return []
        client, object_type = self._client, self.object_type
        if object_type == "contacts":
            records = [
                record for chunk in chunks(wanted, IN_VALUES_MAX)
                for record in client.search_in("contacts", "email", chunk, self.fields.record_properties())
            ]
        else:
            contact_ids = [
                str(contact["id"]) for chunk in chunks(wanted, IN_VALUES_MAX)
                for contact in client.search_in("contacts", "email", chunk, [OBJECT_ID_PROPERTY])
            ]
            lead_ids = client.associated_ids("contacts", object_type, contact_ids)
            records = client.batch_read(object_type, lead_ids, self.fields.record_properties())
        page = self._streams.page(records, "")
        for rejection in page.rejected:
            log.warning("hubspot %s %s: found by email but unreadable (%s); left out", object_type, rejection.record_id, rejection.message)
        return list({lead.id: lead for lead in page.leads}.values())

    def find_leads_by_owner(self, owner_ids: Sequence[str]) -> list[Lead]:
        """The live records these owners hold: a search `hubspot_owner_id IN [...]` (≤100 values a request),
        then the records read as fetch reads them [crm-behaviour: HubSpot search filters and sorting]."""
        wanted = list(dict.fromkeys(i for i in owner_ids if i))
        ids = [
            str(record["id"]) for chunk in chunks(wanted, IN_VALUES_MAX)
            for record in self._client.search_in(self.object_type, OWNER_PROPERTY, chunk, [OBJECT_ID_PROPERTY])
        ]
        return self.fetch_by_ids(list(dict.fromkeys(ids))) if ids else []

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        """batch/update ≤100 inputs per call; one WriteResult per patch, in input order (see write)."""
        return write.write(self._client, self.fields, self._clock, patches, fence)


def _keep_companies(found: dict[str, dict[str, Any]], companies: Iterable[dict[str, Any]]) -> None:
    """Companies → `found` by lower-case domain, the preferred one per domain (see _prefer_company)."""
    for company in companies:
        domain = ((company.get("properties") or {}).get("domain") or "").strip().lower()
        if domain in found and not _prefer_company(company, found[domain]):
            continue
        if domain:
            found[domain] = company


def _add_contact_owners(owners: dict[str, str], contacts: Iterable[Mapping[str, Any]]) -> None:
    """Owned contacts (in id order) → lower-case email → owner id; the first per email wins."""
    for contact in contacts:
        props = contact.get("properties") or {}
        email_value = (props.get("email") or "").strip().lower()
        if email_value and props.get(OWNER_PROPERTY):
            owners.setdefault(email_value, str(props[OWNER_PROPERTY]))


def _prefer_company(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Several companies can share a domain: prefer an owned one, then the oldest (lowest id)."""
    def rank(company: Mapping[str, Any]) -> tuple[int, int]:
        owned = bool((company.get("properties") or {}).get(OWNER_PROPERTY))
        return (0 if owned else 1, int(company["id"]))

    return rank(candidate) < rank(current)
