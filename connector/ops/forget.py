"""`connector forget`: read the person named on the command line; the erasure itself is connector.state.erasure."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

from connector.adapters.crms import DESCRIPTORS
from connector.core.errors import UsageError
from connector.core.keys import lead_key
from connector.state.erasure import EMAIL, ERASED, ForgetReport, forget, purge_expired_events

__all__ = ["ERASED", "ForgetReport", "forget", "is_interactive", "lead_key_for", "parse_person", "purge_expired_events"]

_LEAD_KEY = re.compile(r"^(hubspot|salesforce):[A-Za-z0-9_]+:[A-Za-z0-9_-]+$")


def parse_person(ref: str) -> tuple[str | None, str | None]:
    """`EMAIL`, `CRM:ID` or a full lead key `CRM:OBJECT:ID` → (email, lead_key or "crm:ID" to resolve)."""
    text = ref.strip()
    if "@" in text and ":" not in text:
        if not EMAIL.fullmatch(text):
            raise UsageError(f"{ref!r} is not an email address")
        return text.lower(), None
    parts = text.split(":")
    if parts[0] not in ("hubspot", "salesforce") or len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"expected EMAIL, CRM:ID or CRM:OBJECT:ID (CRM hubspot or salesforce), got {ref!r}")
    return None, text


def lead_key_for(ref: str, object_types: Mapping[str, str]) -> str:
    """A `crm:ID` reference as a lead key, using the configured object of that CRM."""
    parts = ref.split(":")
    if len(parts) == 3:
        key = ref
    else:
        crm, record_id = parts
        if crm not in DESCRIPTORS:
            raise UsageError(f"{ref!r} is not a lead reference (CRM:ID)")
        key = lead_key(crm, object_types.get(crm) or DESCRIPTORS[crm].object_type, record_id)
    if not _LEAD_KEY.match(key):
        raise UsageError(f"{ref!r} is not a lead reference (CRM:ID)")
    return key


def is_interactive() -> bool:
    """A person at a terminal, who is asked before an erasure; scripts and CronJobs (no TTY) are not asked."""
    return sys.stdin.isatty()
