"""Which intake routes are configured: a missing secret, named by its key, for /readyz, the routes and check-config."""

from __future__ import annotations

from connector.config import Settings

EVENTS_NOT_CONFIGURED = "not configured: [service] events_secret"
WEBHOOKS_NOT_CONFIGURED = "not configured: [hubspot] client_secret"


def unconfigured_intakes(settings: Settings) -> dict[str, str]:
    """Intake route group → why it answers 404 (its secret is missing); empty when every enabled intake can take work.

    A missing secret does not make the service unready: polling and the other intake still work, and
    another replica would answer the same. It is reported so the operator sees why senders get 404.
    """
    missing: dict[str, str] = {}
    if settings.service.events_secret is None:
        missing["events"] = EVENTS_NOT_CONFIGURED
    if settings.hubspot.enabled and settings.hubspot.client_secret is None:
        missing["webhooks"] = WEBHOOKS_NOT_CONFIGURED
    return missing
