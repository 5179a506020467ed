"""Right to erasure: forget one person (`connector forget`, HubSpot privacy deletions) and purge expired events."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from connector.core.errors import UsageError
from connector.state.db import Database, chunks, split_lead_key
from connector.state.schema import dead_letters_t, decisions_t, event_aggregates_t, events_t, intake_t, outbox_t

if TYPE_CHECKING:  # for annotations only: the Store facade imports this module, and the store needs no engine code
    from connector.config import Settings
    from connector.state.store import Store

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
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
        text = EMAIL.sub(ERASED, message)
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


class Erasure:
    """The SQL of an erasure: every table that may hold a person's data, changed in one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def erase_person(self, *, refs: Sequence[str], lead_keys: Sequence[str], redact: Callable[[str], str], now: datetime) -> dict[str, int]:
        """Erase what the store holds about one person, in one transaction; returns counts per kind of row.

        refs: the keys their events may be stored under (lower-case emails and lead keys). Events
        and intake rows naming them are deleted; the leads' decisions keep only the audit facts
        (kind, owner, rep, rule, pool, strategy, arm, time); dead letters of the leads lose their
        payload and `redact` rewrites their message; finished outbox rows of the leads are deleted.
        """
        refs = list(dict.fromkeys(refs))
        keys = list(dict.fromkeys(lead_keys))
        counts = {"events": 0, "decisions": 0, "dead_letters": 0, "outbox": 0, "intake": 0}
        with self._db.write() as conn:
            for chunk in chunks(refs):
                counts["events"] += int(conn.execute(sa.delete(events_t).where(events_t.c.lead_key.in_(chunk))).rowcount)
                conn.execute(sa.delete(event_aggregates_t).where(event_aggregates_t.c.key.in_(chunk)))
                counts["intake"] += int(
                    conn.execute(sa.delete(intake_t).where(sa.or_(intake_t.c.ref.in_(chunk), intake_t.c.target.in_(chunk)))).rowcount
                )
            for chunk in chunks(keys):
                counts["decisions"] += int(
                    conn.execute(
                        sa.update(decisions_t)
                        .where(decisions_t.c.lead_key.in_(chunk))
                        .values(score=None, grade=None, model=None, explanation={"erased_at": now.isoformat()})
                    ).rowcount
                )
            for key in keys:
                crm, object_type, record_id = split_lead_key(key)
                record = sa.and_(
                    dead_letters_t.c.crm == crm, dead_letters_t.c.object_type == object_type, dead_letters_t.c.record_id == record_id
                )
                for row in conn.execute(sa.select(dead_letters_t.c.id, dead_letters_t.c.message).where(record)).all():
                    conn.execute(
                        sa.update(dead_letters_t)
                        .where(dead_letters_t.c.id == row.id)
                        .values(payload={"erased_at": now.isoformat()}, message=redact(row.message))
                    )
                    counts["dead_letters"] += 1
                counts["outbox"] += int(
                    conn.execute(
                        sa.delete(outbox_t).where(
                            outbox_t.c.crm == crm, outbox_t.c.object_type == object_type,
                            outbox_t.c.record_id == record_id, outbox_t.c.status != "pending",
                        )
                    ).rowcount
                )
        return counts
