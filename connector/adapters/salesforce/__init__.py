"""The Salesforce adapter: Leads over REST, its auth and SOQL, and Change Data Capture (cdc/)."""
