"""`connector sandbox`: start the loopback CRMs, print what `sync` and `serve` need as exports, run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import secrets
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from connector.sandbox.hubspot import HubSpotSandbox

if TYPE_CHECKING:
    from connector.sandbox.salesforce import SalesforceSandbox

SANDBOX_APP_ID = "sandbox-app"


def run_sandbox(*, host: str, port: int, contacts: int, sf_leads: int, echo: Callable[[str], None],
                latency_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
    """Start, announce and wait; SIGTERM stops it like Ctrl-C (a `kill %1` or a container stop leaves no server behind).

    `latency_ms` ± `jitter_ms`: simulated network time of every request, on both sandboxes (served concurrently)."""
    hs = HubSpotSandbox(contacts=contacts, host=host, port=port)
    hs.latency_seconds, hs.latency_jitter_seconds = latency_ms / 1000, jitter_ms / 1000
    hs.start()
    sf: SalesforceSandbox | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        ids = hs.records_ids("contacts")
        echo(f"HubSpot sandbox:    {hs.base_url}   token: {hs.token}" + (f"   contacts {ids[0]}…{ids[-1]}" if ids else ""))
        echo(f"  export CONNECTOR_HUBSPOT__ENABLED=true CONNECTOR_HUBSPOT__BASE_URL={hs.base_url} CONNECTOR_HUBSPOT__ACCESS_TOKEN={hs.token}")
        sf = start_salesforce_sandbox(sf_leads, echo, latency_seconds=latency_ms / 1000, jitter_seconds=jitter_ms / 1000)
        # `connector serve` answers POST /webhooks/hubspot and POST /events only when their secrets are set:
        # fresh ones per sandbox, to sign test deliveries with.
        echo("  export CONNECTOR_HUBSPOT__APP_ID=" + SANDBOX_APP_ID
             + f" CONNECTOR_HUBSPOT__CLIENT_SECRET={secrets.token_urlsafe(16)}"
             + f" CONNECTOR_SERVICE__EVENTS_SECRET={secrets.token_urlsafe(16)}   # for connector serve")
        echo("Ctrl-C (or SIGTERM) to stop.")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        hs.stop()
        if sf is not None:
            sf.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def start_salesforce_sandbox(leads: int, echo: Callable[[str], None], *, latency_seconds: float = 0.0,
                             jitter_seconds: float = 0.0) -> SalesforceSandbox | None:
    """The Salesforce sandbox with its Pub/Sub API, started and announced (None: its extra is not installed)."""
    try:
        from connector.sandbox.salesforce import SalesforceSandbox
    except ImportError:
        return None
    sf = SalesforceSandbox(leads=leads, pubsub=True, pubsub_tls=False)
    sf.latency_seconds, sf.latency_jitter_seconds = latency_seconds, jitter_seconds
    sf.start()
    echo(f"Salesforce sandbox: {sf.instance_url}   CA file: {sf.ca_file}   Pub/Sub API: {sf.pubsub_target}")
    echo(f"  e.g. lead ids: {', '.join(sf.lead_ids()[:3])}")
    echo(
        "  export CONNECTOR_SALESFORCE__ENABLED=true "
        f"CONNECTOR_SALESFORCE__LOGIN_URL={sf.instance_url} CONNECTOR_SALESFORCE__CLIENT_ID={sf.client_id} "
        f"CONNECTOR_SALESFORCE__CLIENT_SECRET={sf.client_secret} CONNECTOR_SALESFORCE__CA_BUNDLE={sf.ca_file}"
    )
    echo(
        "  export CONNECTOR_SALESFORCE__CDC_ENABLED=true "
        f"CONNECTOR_SALESFORCE__PUBSUB_TARGET={sf.pubsub_target} CONNECTOR_SALESFORCE__PUBSUB_TLS=false"
    )
    return sf
