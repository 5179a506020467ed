"""Per-CRM knowledge comes from each adapter package's descriptor; both adapters satisfy CrmAdapter under mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.adapters.base import CrmAdapter, FindsLeadsByEmail, NoGuard
from connector.adapters.crms import DESCRIPTORS, descriptor_for
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.descriptor import HUBSPOT
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.adapters.salesforce.descriptor import SALESFORCE
from connector.config import HubSpotSettings, SalesforceSettings, Settings
from connector.core.clock import FrozenClock
from connector.core.models import CRMS

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def settings() -> Settings:
    return Settings(
        hubspot=HubSpotSettings(enabled=True, access_token=SecretStr("tok"), base_url="http://127.0.0.1:9", stage_order=["lead", "customer"]),
        salesforce=SalesforceSettings(enabled=False, status_order=["Open", "Closed"]),
    )


def test_every_crm_has_one_descriptor_in_the_usual_order() -> None:
    assert tuple(DESCRIPTORS) == CRMS
    assert descriptor_for("hubspot") is HUBSPOT and descriptor_for("salesforce") is SALESFORCE
    with pytest.raises(KeyError, match="unknown CRM 'pipedrive'"):
        descriptor_for("pipedrive")


def test_descriptors_read_each_crms_own_settings() -> None:
    s = settings()
    assert HUBSPOT.stages(s) == ("lead", "customer") and SALESFORCE.stages(s) == ("Open", "Closed")
    assert (HUBSPOT.is_enabled(s), SALESFORCE.is_enabled(s)) == (True, False)
    assert (HUBSPOT.object_type, SALESFORCE.object_type) == ("contacts", "Lead")


def test_a_descriptor_opens_its_adapter() -> None:
    adapter = HUBSPOT.open(settings(), guard=NoGuard(), clock=FrozenClock(NOW), sleep=lambda s: None, grade_options=("hot",))
    assert isinstance(adapter, HubSpotAdapter) and adapter.crm == "hubspot"
    assert isinstance(adapter, FindsLeadsByEmail)


# What mypy checks below: each adapter is a CrmAdapter wherever one is asked for.
def _as_protocol(hubspot: HubSpotAdapter, salesforce: SalesforceAdapter) -> tuple[CrmAdapter, CrmAdapter, FindsLeadsByEmail]:
    return hubspot, salesforce, salesforce


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(), reason="mypy not installed")
def test_both_adapters_satisfy_the_protocol_under_mypy() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--follow-imports=silent", __file__],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
