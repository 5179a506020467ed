"""The `connector serve` sidecar: app (routes), intake (taking work in), worker (processing it), webhooks, events."""
