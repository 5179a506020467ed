"""What the rest of the connector knows about HubSpot: its name, default object, stage order and its adapter."""

from __future__ import annotations

from connector.adapters.base import AdapterClass, CrmDescriptor
from connector.config import HubSpotSettings, Settings


def adapter_class() -> AdapterClass[HubSpotSettings]:
    """HubSpotAdapter, imported (with hubspot-api-client) only when an adapter is opened."""
    from connector.adapters.hubspot.adapter import HubSpotAdapter

    return HubSpotAdapter


# Stages are lifecyclestage (contacts) or the Leads pipeline, and move forward only
# [crm-behaviour: HubSpot lifecycle stages move forward only]: `[hubspot] stage_order` ranks them.
HUBSPOT: CrmDescriptor[Settings, HubSpotSettings] = CrmDescriptor(
    "hubspot", "HubSpot", "contacts", section=lambda settings: settings.hubspot,
    stage_order=lambda hubspot: hubspot.stage_order, adapter=adapter_class,
)
