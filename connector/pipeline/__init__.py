"""The sync pipeline: one batch of leads fetched, scored, routed, diffed and written."""
