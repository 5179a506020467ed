"""The HubSpot adapter: contacts (or Leads objects) as Leads, and the fields it writes."""
