"""Personal data: erase one person on request (`connector forget`, HubSpot privacy deletions) and purge old events."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.config import Settings
from connector.core.errors import UsageError
from connector.state.store import Store

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_LEAD_KEY = re.compile(r"^(hubspot|salesforce):[A-Za-z0-9_]+:[A-Za-z0-9_-]+$")
ERASED = "[erased]"


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` erased: the person's references and rows changed per kind."""

    email: str | None
    lead_keys: tuple[str, ...]
    events: int = 0
    decisions: int = 0
    dead_letters: int = 0
    outbox: int = 0
    intake: int = 0
    kept: tuple[str, ...] = field(default=(
        "decision kind, owner, rep, rule, pool, strategy, arm and time (the audit trail, no personal data)",
        "lead state: the owner, score, grade and stage the connector wrote to the CRM record",
    ))

    @property
    def total(self) -> int:
        return self.events + self.decisions + self.dead_letters + self.outbox + self.intake

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email, "lead_keys": list(self.lead_keys), "events": self.events, "decisions": self.decisions,
            "dead_letters": self.dead_letters, "outbox": self.outbox, "intake": self.intake, "kept": list(self.kept),
        }

    def lines(self) -> list[str]:
        who = ", ".join([*([self.email] if self.email else []), *self.lead_keys])
        return [
            f"erased personal data of {who}:",
            f"  {self.events} behaviour event(s) deleted",
            f"  {self.decisions} decision(s) stripped to kind / owner / time (scores and explanations removed)",
            f"  {self.dead_letters} dead letter(s) emptied (payload removed, emails in messages redacted)",
            f"  {self.outbox} finished write(s) deleted from the outbox",
            f"  {self.intake} queued webhook / event item(s) deleted",
            *(f"  kept: {k}" for k in self.kept),
        ]


def parse_person(ref: str) -> tuple[str | None, str | None]:
    """`EMAIL`, `CRM:ID` or a full lead key `CRM:OBJECT:ID` → (email, lead_key or "crm:ID" to resolve)."""
    text = ref.strip()
    if "@" in text and ":" not in text:
        if not _EMAIL.fullmatch(text):
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
        object_type = object_types.get(crm) or ("contacts" if crm == "hubspot" else "Lead")
        key = f"{crm}:{object_type}:{record_id}"
    if not _LEAD_KEY.match(key):
        raise UsageError(f"{ref!r} is not a lead reference (CRM:ID)")
    return key


def forget(store: Store, *, email: str | None = None, lead_key: str | None = None, lead_keys: Sequence[str] = (), now: datetime) -> ForgetReport:
    """Erase what the connector holds about one person, found by email and/or lead key(s) (`crm:object:id`).

    Deletes their behaviour events and queued intake, strips their decisions to the audit facts
    (kind / owner / rep / rule / pool / arm / time), empties their dead letters' payloads and removes
    emails from their messages, and deletes their finished outbox rows. The same call serves
    `connector forget` and HubSpot's privacy-deletion webhook.
    """
    if not email and not lead_key and not lead_keys:
        raise UsageError("forget needs an email or a lead key")
    address = email.strip().lower() if email else None
    keys = tuple(dict.fromkeys([*([lead_key] if lead_key else []), *lead_keys]))
    refs = [*([address] if address else []), *keys]

    def redact(message: str) -> str:
        text = _EMAIL.sub(ERASED, message)
        return text.replace(address, ERASED) if address else text

    counts = store.erase_person(refs=refs, lead_keys=keys, redact=redact, now=now)
    return ForgetReport(
        email=address, lead_keys=keys, events=counts["events"], decisions=counts["decisions"],
        dead_letters=counts["dead_letters"], outbox=counts["outbox"], intake=counts["intake"],
    )


def purge_expired_events(store: Store, settings: Settings, now: datetime) -> int:
    """Delete behaviour events older than [privacy] event_retention_days (0: keep forever); returns how many."""
    days = settings.privacy.event_retention_days
    if days <= 0:
        return 0
    return store.purge_events(now - timedelta(days=days))
