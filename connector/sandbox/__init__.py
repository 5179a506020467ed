"""The sandbox CRMs: loopback servers imitating HubSpot and Salesforce, and their seed data."""
