"""Per-CRM knowledge comes from each adapter package's descriptor; both adapters satisfy CrmAdapter under mypy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.adapters.base import FindsLeadsByEmail, NoGuard
from connector.adapters.crms import DESCRIPTORS, descriptor_for
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.descriptor import HUBSPOT
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


def test_both_adapters_satisfy_the_protocol_under_mypy() -> None:
    """The proof is connector/adapters/crms.py's `_adapters_conform`, type-checked with the whole package by
    tests/test_dependencies.py::test_package_is_strictly_typed (one strict mypy run for both). Here: it is still
    there, and still says what it must."""
    import ast

    source = (ROOT / "connector" / "adapters" / "crms.py").read_text(encoding="utf-8")
    conform = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef) and node.name == "_adapters_conform")
    annotations = [ast.unparse(arg.annotation) for arg in conform.args.args if arg.annotation is not None]
    assert annotations == ["HubSpotAdapter", "SalesforceAdapter"]
    assert ast.unparse(conform.returns) == "tuple[CrmAdapter, CrmAdapter, FindsLeadsByEmail]"
    assert ast.unparse(conform.body[-1]) == "return (hubspot, salesforce, salesforce)"
