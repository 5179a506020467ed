"""The CRMs the connector speaks, by name: each adapter package's descriptor, in a fixed order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connector.adapters.base import CrmDescriptor
from connector.adapters.hubspot.descriptor import HUBSPOT
from connector.adapters.salesforce.descriptor import SALESFORCE
from connector.config import Settings

if TYPE_CHECKING:
    from connector.adapters.base import CrmAdapter, FindsLeadsByEmail
    from connector.adapters.hubspot.adapter import HubSpotAdapter
    from connector.adapters.salesforce.adapter import SalesforceAdapter

    def _adapters_conform(hubspot: HubSpotAdapter, salesforce: SalesforceAdapter) -> tuple[CrmAdapter, CrmAdapter, FindsLeadsByEmail]:
        """Never called: strict mypy on the package proves each adapter is a CrmAdapter wherever one is asked for
        (and Salesforce's finds leads by email), without importing the adapters at run time."""
        return hubspot, salesforce, salesforce


DESCRIPTORS: Mapping[str, CrmDescriptor[Settings, Any]] = {d.crm: d for d in (HUBSPOT, SALESFORCE)}


def descriptor_for(crm: str) -> CrmDescriptor[Settings, Any]:
    """The descriptor of a CRM by name; KeyError names the CRMs there are."""
    try:
        return DESCRIPTORS[crm]
    except KeyError:
        raise KeyError(f"unknown CRM {crm!r}; known: {', '.join(DESCRIPTORS)}") from None
