"""Smoke test of `python -m bench ceiling`: `connector backfill` as a new process against a sandbox with latency,
both CRMs, two sizes in one run, the naive peer, and the limits never passed. Figures, not timings."""

from __future__ import annotations

import tomllib

import pytest

from bench import ceiling
from connector.config import example_config_path, load_settings


def test_two_sizes_in_one_run_write_every_lead_within_the_limit() -> None:
    figures = ceiling.run(["--sizes", "300,500", "--rate", "60", "--latency-ms", "5", "--jitter-ms", "2", "--naive-leads", "5"])
    assert figures["naive_leads_per_second"] > 0
    for size in (300, 500):
        assert figures[f"{size}.written"] == size and figures[f"{size}.fetched"] == size
        assert figures[f"{size}.http_429"] == 0
        assert figures[f"{size}.max_calls_in_10s"] <= 60
        assert figures[f"{size}.achieved_vs_ceiling"] > 0 and figures[f"{size}.vs_naive"] > 0
        assert figures[f"{size}.minimum_calls"] == ceiling.minimum_calls(size)


def test_salesforce_backfill_as_a_new_process() -> None:
    figures = ceiling.run(["--crm", "salesforce", "--leads", "400", "--latency-ms", "5", "--jitter-ms", "2", "--naive-leads", "3"])
    assert figures["written"] > 0 and figures["fetched"] > 0 and figures["http_429"] == 0
    assert figures["ceiling_leads_per_second"] == pytest.approx(ceiling.SALESFORCE_TARGET_LEADS_PER_S)


def test_the_sync_ceiling_is_the_search_limit() -> None:
    assert ceiling.ceiling_seconds("hubspot", "sync", 100_000, 190, 5) == pytest.approx(100.0)  # 500 searches at 5/s
    assert ceiling.ceiling_seconds("hubspot", "backfill", 100_000, 190, 5) == pytest.approx(2000 / 19)


def test_the_child_config_is_the_example_config_pointed_at_the_sandbox(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = ceiling.toml_with(example_config_path().read_text(encoding="utf-8"), {
        "hubspot": {"enabled": True, "base_url": "http://127.0.0.1:1", "access_token": "t", "requests_per_10s": 190},
        "store": {"url": "sqlite:///x.db"}, "sync": {"writes_in_flight": 2},
    })
    data = tomllib.loads(text)
    assert data["hubspot"]["base_url"] == "http://127.0.0.1:1" and data["hubspot"]["requests_per_10s"] == 190
    assert data["sync"]["writes_in_flight"] == 2 and data["store"]["url"] == "sqlite:///x.db"
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path).hubspot.enabled
