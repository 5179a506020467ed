"""[sync] person_wins on both CRMs: a grade / Rating a person set after our write is kept; the score stays ours.

The sandboxes and the connector share one pinned clock, moved a minute on before a person's edit, so the
edit is newer than the connector's write (as it is in a CRM) whatever the wall clock says.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.clock import FrozenClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.jobs import make_adapters, sync_once
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

from .conftest import Env

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def salesforce(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=7, leads=80, clock=clock) as sb:
        yield sb


@pytest.fixture
def small_hubspot(clock: FrozenClock) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=80, clock=clock) as sb:
        yield sb


def sf_settings(store_url: str, sf: SalesforceSandbox, person_wins: list[str] | None) -> Settings:
    overrides: dict[str, Any] = {
        "store": {"url": store_url},
        "routing": {"when_unavailable": "fallback"},
        "salesforce": {
            "enabled": True, "login_url": sf.instance_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
            "ca_bundle": str(sf.ca_file), "lookback_seconds": 0,
        },
    }
    if person_wins is not None:
        overrides["sync"] = {"person_wins": person_wins}
    return load_settings(example_config_path(), overrides)


def sf_person_edit(
    store_url: str, sf: SalesforceSandbox, clock: FrozenClock, person_wins: list[str] | None, edit: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sync, let a person edit a lead the connector rated below Hot, sync again; the lead (before, after)."""
    settings = sf_settings(store_url, sf, person_wins)
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, clock=clock)
        assert sync_once(settings, store, adapters, clock).aborted is None
        leads = [sf.get_lead(i) for i in sf.lead_ids()]
        before = next(lead for lead in leads if lead and not lead.get("IsConverted") and lead["Rating"] in ("Warm", "Cold"))
        clock.advance(60)
        sf.person_update(before["Id"], edit)
        clock.advance(60)
        second = sync_once(settings, store, adapters, clock)
        assert second.aborted is None and second.fetched >= 1
    after = sf.get_lead(before["Id"])
    assert after is not None
    return before, after


@pytest.mark.parametrize("person_wins", [None, ["owner", "stage", "grade"]])
def test_salesforce_rating_a_person_set_to_hot_is_kept(
    store_url: str, salesforce: SalesforceSandbox, clock: FrozenClock, person_wins: list[str] | None
) -> None:
    _, after = sf_person_edit(store_url, salesforce, clock, person_wins, {"Rating": "Hot"})
    assert after["Rating"] == "Hot"


def test_salesforce_rating_is_rewritten_when_grade_is_not_a_persons_choice(
    store_url: str, salesforce: SalesforceSandbox, clock: FrozenClock
) -> None:
    before, after = sf_person_edit(store_url, salesforce, clock, ["owner", "stage"], {"Rating": "Hot"})
    assert after["Rating"] == before["Rating"] != "Hot"


def test_salesforce_score_a_person_edits_is_written_back(store_url: str, salesforce: SalesforceSandbox, clock: FrozenClock) -> None:
    field = sf_settings(store_url, salesforce, None).salesforce.score_field
    before, after = sf_person_edit(store_url, salesforce, clock, None, {field: 99.5})
    assert float(after[field]) == pytest.approx(float(before[field]), abs=0.01) != 99.5


def hs_person_edit(env: Env, hubspot: HubSpotSandbox, clock: FrozenClock, props: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Sync, let a person edit a contact the connector graded below hot, sync again; the contact (before, after)."""
    assert sync_once(env.settings, env.store, env.adapters, clock).aborted is None
    grade = env.settings.hubspot.grade_property
    records = [hubspot.get_record("contacts", rid) or {} for rid in sorted(hubspot.records_ids("contacts"), key=int)]
    before = next(r for r in records if r.get(grade) in ("warm", "cold"))
    clock.advance(60)
    hubspot.person_update("contacts", before["hs_object_id"], props)
    clock.advance(60)
    second = sync_once(env.settings, env.store, env.adapters, clock)
    assert second.aborted is None and second.fetched >= 1
    return before, hubspot.get_record("contacts", before["hs_object_id"]) or {}


@pytest.mark.parametrize(("person_wins", "kept"), [(None, True), (["owner", "stage"], False)])
def test_hubspot_grade_a_person_set_to_hot(
    store_url: str, small_hubspot: HubSpotSandbox, clock: FrozenClock, person_wins: list[str] | None, kept: bool
) -> None:
    extra = {"sync": {"person_wins": person_wins}} if person_wins is not None else {}
    env = Env(store_url, small_hubspot, clock=clock, **extra)
    try:
        grade = env.settings.hubspot.grade_property
        before, after = hs_person_edit(env, small_hubspot, clock, {grade: "hot"})
    finally:
        env.close()
    assert after[grade] == ("hot" if kept else before[grade])


def test_hubspot_score_a_person_edits_is_written_back(store_url: str, small_hubspot: HubSpotSandbox, clock: FrozenClock) -> None:
    env = Env(store_url, small_hubspot, clock=clock)
    try:
        score = env.settings.hubspot.score_property
        before, after = hs_person_edit(env, small_hubspot, clock, {score: "99.5"})
    finally:
        env.close()
    assert float(after[score]) == pytest.approx(float(before[score]), abs=0.01) != 99.5
