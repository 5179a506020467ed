"""The sidecar service: HTTP app, webhooks and behaviour events."""
