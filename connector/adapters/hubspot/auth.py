"""HubSpot auth: the private app's access token and the SDK api objects it opens (host and retries set once)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import hubspot
import urllib3

from connector.adapters.hubspot.errors import ACCESS_TOKEN_KEY
from connector.config import HubSpotSettings
from connector.core.errors import ConfigError, ConfigProblem


@dataclass
class Apis:
    """The SDK api objects, built once: every discovery attribute access builds a new ApiClient and pool."""

    objects_basic: Any
    objects_batch: Any
    objects_search: Any
    owners: Any
    properties: Any
    associations: Any

    def close(self) -> None:
        """Release the connection pools."""
        for name in fields(self):
            getattr(self, name.name).api_client.rest_client.pool_manager.clear()


def access_token(settings: HubSpotSettings) -> str:
    """The configured token; ConfigError naming the key when there is none."""
    if settings.access_token is None:
        raise ConfigError([ConfigProblem(ACCESS_TOKEN_KEY, "is required (or access_token_file)")])
    return settings.access_token.get_secret_value()


def open_apis(settings: HubSpotSettings) -> Apis:
    """The api objects of one account, authenticated with its private app token."""
    client = hubspot.Client.create(
        access_token=access_token(settings),
        host=settings.base_url.rstrip("/"),
        # urllib3 may retry only connection failures (the request never left); statuses — 429,
        # 5xx — are never retried by urllib3 (it would skip POSTs and ignore our budget,
        # [crm-behaviour: Pitfall: 429s not retried]): call_with_retries owns that policy
        # [crm-behaviour: hubspot-api-client: host and retries].
        retry=urllib3.Retry(
            total=3, connect=3, read=0, status=0, other=0, redirect=0, allowed_methods=None,
            raise_on_status=False, respect_retry_after_header=False,
        ),
    )
    return Apis(
        objects_basic=client.crm.objects.basic_api,
        objects_batch=client.crm.objects.batch_api,
        objects_search=client.crm.objects.search_api,
        owners=client.crm.owners.owners_api,
        properties=client.crm.properties.core_api,
        associations=client.crm.associations.v4.batch_api,
    )
