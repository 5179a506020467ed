"""What the rest of the connector knows about Salesforce: its name, object, status order and its adapter."""

from __future__ import annotations

from connector.adapters.base import AdapterClass, CrmDescriptor
from connector.config import SalesforceSettings, Settings


def adapter_class() -> AdapterClass[SalesforceSettings]:
    """SalesforceAdapter, imported (with simple-salesforce) only when an adapter is opened."""
    from connector.adapters.salesforce.adapter import SalesforceAdapter

    return SalesforceAdapter


# The stage the connector writes is a Lead picklist (`[salesforce] stage_field`, Status by default),
# ranked by `[salesforce] status_order`.
SALESFORCE: CrmDescriptor[Settings, SalesforceSettings] = CrmDescriptor(
    "salesforce", "Salesforce", "Lead", section=lambda settings: settings.salesforce,
    stage_order=lambda salesforce: salesforce.status_order, adapter=adapter_class,
)
