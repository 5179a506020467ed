"""The Salesforce sandbox's data: sObject schemas and tables, ids, stamps, conversion and change notifications."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connector.core.clock import Clock
from connector.sandbox.salesforce.schema import KEY_PREFIX, LEAD_STATUSES, SCHEMAS_STATIC, FieldDef, lead_fields, sf_id

Row = dict[str, Any]
# (change type, lead id, the row before (None: create / delete), Sforce-Call-Options client, an API write, user id)
ChangeListener = Callable[[str, str, Mapping[str, Any] | None, str | None, bool, str | None], None]


class Org:
    """Everything the org holds; callers hold the sandbox lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.schemas: dict[str, dict[str, FieldDef]] = {"Lead": lead_fields(), **{k: dict(v) for k, v in SCHEMAS_STATIC.items()}}
        self.tables: dict[str, dict[str, Row]] = {name: {} for name in self.schemas}
        self.write_clients: dict[str, str | None] = {}
        self.counters: Counter[str] = Counter()
        self.admin_user_id = ""
        self.integration_user_id = ""
        self.default_queue_id = ""
        self.on_change: ChangeListener | None = None

    def next_id(self, sobject: str) -> str:
        self.counters[sobject] += 1
        return sf_id(KEY_PREFIX[sobject], self.counters[sobject])

    def now(self) -> datetime:
        # SystemModstamp has second precision in practice (responses end in .000+0000) → ties are common.
        return self.clock.now().astimezone(UTC).replace(microsecond=0)

    def insert_lead(self, fields: Mapping[str, Any], *, created: datetime, modified: datetime) -> str:
        lid = self.next_id("Lead")
        row: Row = {name: None for name in self.schemas["Lead"]}
        row.update({"Id": lid, "IsDeleted": False, "IsConverted": False, "Status": LEAD_STATUSES[0][0],
                    "OwnerId": self.default_queue_id, "CreatedDate": created, "LastModifiedById": self.admin_user_id})
        row.update({k: v for k, v in fields.items() if k in self.schemas["Lead"]})
        row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
        row["LastModifiedDate"] = row["SystemModstamp"] = modified
        self.tables["Lead"][lid] = row
        return lid

    def insert(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """A row of another sObject (account, contact) with the given fields; returns its id."""
        rid = self.next_id(sobject)
        self.tables[sobject][rid] = {**{n: None for n in self.schemas[sobject]}, "IsDeleted": False, **fields, "Id": rid}
        return rid

    def touch(self, row: Row, when: datetime | None = None, user_id: str | None = None) -> None:
        stamp = when or self.now()
        row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["LastModifiedById"] = user_id or self.admin_user_id

    def convert(self, lead_id: str, when: datetime | None = None) -> None:
        row = self.tables["Lead"][lead_id]
        owner = row["OwnerId"] if str(row["OwnerId"]).startswith("005") else self.admin_user_id
        cid = self.next_id("Contact")
        self.tables["Contact"][cid] = {"Id": cid, "IsDeleted": False, "FirstName": row["FirstName"],
                                       "LastName": row["LastName"], "Email": row["Email"], "OwnerId": owner, "AccountId": None}
        row.update({"IsConverted": True, "Status": "Closed - Converted", "ConvertedContactId": cid,
                    "ConvertedDate": (when or self.now()).date()})
        self.touch(row, when)

    def check_fields(self, sobject: str, fields: Mapping[str, Any]) -> None:
        unknown = [k for k in fields if k not in self.schemas[sobject]]
        if unknown:
            raise KeyError(f"no such {sobject} field(s): {', '.join(unknown)}")

    def picklist_values(self, fdef: FieldDef) -> tuple[str, ...]:
        """A Lead field's allowed values; Status follows the org's LeadStatus rows."""
        if fdef.name == "Status":
            return tuple(s["ApiName"] for s in self.tables["LeadStatus"].values())
        return fdef.picklist

    def user_by_username(self, username: str) -> Row | None:
        return next((u for u in self.tables["User"].values() if u["Username"].lower() == username.lower()), None)

    def emit_change(self, change_type: str, lead_id: str, before: Mapping[str, Any] | None, *, client: str | None = None,
                    api: bool = False, user_id: str | None = None) -> None:
        """Tell the listener (the Pub/Sub sandbox, when running) about a change just made."""
        if self.on_change is not None:
            self.on_change(change_type, lead_id, before, client, api, user_id)
