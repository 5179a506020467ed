"""What the HubSpot sandbox knows about object types: names and aliases, id ranges, date properties, association ids, limits."""

from __future__ import annotations

OBJECT_TYPES = ("contacts", "companies", "leads")
# Paths accept the plural name, the singular and the object type id [crm-behaviour: HubSpot object paths].
OBJECT_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "leads": "leads", "lead": "leads", "0-136": "leads",
}
SINGULAR = {"contacts": "CONTACT", "companies": "COMPANY", "leads": "LEAD"}
# Distinct id ranges per object type, so an id used against the wrong object type is a 404, not a silent hit.
ID_START = {"contacts": 101, "companies": 20_000_001, "leads": 400_000_001}
CREATED_PROPERTY = {"contacts": "createdate", "companies": "createdate", "leads": "hs_createdate"}
# Contacts stamp `lastmodifieddate`; companies and leads `hs_lastmodifieddate` [crm-behaviour: HubSpot modified-date property per object].
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "leads": "hs_lastmodifieddate"}
# Properties a search / list returns when none are asked for [crm-behaviour: HubSpot search default properties].
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "leads": ("hs_createdate", "hs_lastmodifieddate", "hs_lead_name", "hs_object_id"),
}
# Free-text `query` searches these properties.
QUERY_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname", "phone", "company"),
    "companies": ("name", "domain", "website"),
    "leads": ("hs_lead_name",),
}
LIST_LIMIT_MAX = 100  # list GET page size [crm-behaviour: HubSpot list pages hold at most 100 records]
BATCH_MAX = 100  # batch read / update / create inputs [crm-behaviour: HubSpot batch calls take at most 100 inputs]
SEARCH_LIMIT_MAX = 200  # search page size [crm-behaviour: HubSpot search: 10,000 results per query]
SEARCH_RESULT_CAP = 10_000  # per query; beyond → HTTP 400 [crm-behaviour: HubSpot search: 10,000 results per query]
FILTER_GROUPS_MAX, FILTERS_PER_GROUP_MAX, FILTERS_TOTAL_MAX = 5, 10, 25  # [crm-behaviour: HubSpot search filters and sorting]
ASSOCIATION_BATCH_MAX = 1_000  # v4 batch read ids per request [crm-behaviour: HubSpot associations]

# Association type ids (HUBSPOT_DEFINED) [crm-behaviour: HubSpot associations]: contact→company primary 1 / unlabeled 279,
# company→contact primary 2 / unlabeled 280, company child→parent 14 / parent→child 13.
# Lead↔contact 578/579 are product knowledge, not verified against the docs.
ASSOC_CONTACT_COMPANY = ((1, "Primary"), (279, None))
ASSOC_COMPANY_CONTACT = ((2, "Primary"), (280, None))
ASSOC_CHILD_TO_PARENT = ((14, "Parent Company"),)
ASSOC_PARENT_TO_CHILD = ((13, "Child Company"),)
ASSOC_LEAD_CONTACT = ((578, "Primary"),)
ASSOC_CONTACT_LEAD = ((579, "Primary"),)
# v3 `associations=` names on a single-record GET.
ASSOC_V3_NAMES = {1: "contact_to_company", 279: "contact_to_company_unlabeled", 2: "company_to_contact",
                  280: "company_to_contact_unlabeled", 13: "parent_to_child_company", 14: "child_to_parent_company",
                  578: "lead_to_primary_contact", 579: "contact_to_lead"}
# The object type an association type id points to (creating a record with `associations`).
ASSOC_TARGET_TYPE = {1: "companies", 279: "companies", 2: "contacts", 280: "contacts", 578: "contacts",
                     13: "companies", 14: "companies", 579: "leads"}


def object_type_or_raise(object_type: str) -> str:
    """The canonical object type for a name, singular or type id; ValueError for an unknown one."""
    try:
        return OBJECT_ALIASES[object_type]
    except KeyError:
        raise ValueError(f"hubspot sandbox has no object type {object_type!r}; it has {list(OBJECT_TYPES)}") from None
