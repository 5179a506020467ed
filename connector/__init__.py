"""CRM lead connector: HubSpot and Salesforce leads scored, routed and staged by one engine."""

__version__ = "0.1.0"
