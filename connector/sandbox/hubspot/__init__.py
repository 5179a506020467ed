"""The HubSpot sandbox: a loopback HubSpot account that the real hubspot-api-client talks to (see `server`)."""

from __future__ import annotations

from connector.sandbox.hubspot.properties import PropertyDef
from connector.sandbox.hubspot.records import Change
from connector.sandbox.hubspot.server import HubSpotSandbox
from connector.sandbox.hubspot.wire import iso, time_ms, to_ms

__all__ = ["Change", "HubSpotSandbox", "PropertyDef", "iso", "time_ms", "to_ms"]
