"""Owners of the HubSpot sandbox: the seeded reps and queue, and the owners API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.sandbox._http import Reply
from connector.sandbox.hubspot.wire import abort, flag, int_param, iso, to_ms
from connector.sandbox.seed import SeedRep

OWNER_ID_START = 70_000_001
USER_ID_START = 9_100_001
QUEUE_OWNER_ID = "70000100"
EMEA_QUEUE_OWNER_ID = "70000101"  # a second queue: assignment parks some inbound leads here
OWNERS_CREATED = datetime(2023, 1, 16, 9, 0, tzinfo=UTC)
TEAMS = {"SMB": "4001", "Enterprise": "4002"}


def seed_owners(reps: Sequence[SeedRep]) -> dict[str, dict[str, Any]]:
    """Owner id → the owner as the owners API shapes it: one per rep (inactive reps archived), plus the inbound and EMEA queues."""
    owners: dict[str, dict[str, Any]] = {}
    created_ms = to_ms(OWNERS_CREATED)
    for i, rep in enumerate(reps):
        team = "Enterprise" if "enterprise" in rep.email else "SMB"
        owner_id = str(OWNER_ID_START + i)
        owners[owner_id] = {
            "id": owner_id, "email": rep.email, "firstName": rep.first_name, "lastName": rep.last_name,
            "userId": USER_ID_START + i if rep.is_active else None, "userIdIncludingInactive": USER_ID_START + i,
            "type": "PERSON", "teams": [{"id": TEAMS[team], "name": team, "primary": True}],
            "archived": not rep.is_active, "createdAt": iso(created_ms + i * 1000), "updatedAt": iso(created_ms + i * 1000),
        }
    owners[QUEUE_OWNER_ID] = {
        "id": QUEUE_OWNER_ID, "email": None, "firstName": "Inbound", "lastName": "Queue", "userId": None,
        "userIdIncludingInactive": None, "type": "QUEUE", "teams": [], "archived": False,
        "createdAt": iso(created_ms), "updatedAt": iso(created_ms),
    }
    owners[EMEA_QUEUE_OWNER_ID] = {
        **owners[QUEUE_OWNER_ID], "id": EMEA_QUEUE_OWNER_ID, "firstName": "EMEA Lead", "lastName": "Queue",
    }
    return owners


def owner_json(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in owner.items() if v is not None or k in ("email",)}


def list_owners(owners: Mapping[str, Mapping[str, Any]], query: Mapping[str, list[str]]) -> Reply:
    limit = int_param(query, "limit", 100)
    if limit < 1 or limit > 500:
        raise abort(400, "VALIDATION_ERROR", f"limit must be between 1 and 500, got {limit}")
    after = int_param(query, "after", 0)
    archived = flag(query, "archived")
    email = (query.get("email") or [""])[-1].strip().lower()
    # archived=true lists only the archived (deactivated) owners; the default lists only active ones
    # [crm-behaviour: HubSpot owners: assign by owner id].
    listed = [o for _, o in sorted(owners.items(), key=lambda kv: int(kv[0]))
              if o["archived"] is archived and (not email or (o["email"] or "").lower() == email)]
    listed = [o for o in listed if int(o["id"]) >= after]
    body: dict[str, Any] = {"results": [owner_json(o) for o in listed[:limit]]}
    if len(listed) > limit:
        body["paging"] = {"next": {"after": listed[limit]["id"], "link": f"?after={listed[limit]['id']}"}}
    return Reply(200, body)


def get_owner(owners: Mapping[str, Mapping[str, Any]], key: str, query: Mapping[str, list[str]]) -> Reply:
    id_property = (query.get("idProperty") or ["id"])[-1]
    archived = flag(query, "archived")
    for owner in owners.values():
        value = owner["id"] if id_property == "id" else str(owner.get("userIdIncludingInactive"))
        if value == key and owner["archived"] is archived:
            return Reply(200, owner_json(owner))
    raise abort(404, "OBJECT_NOT_FOUND", f"Owner {key} not found")
