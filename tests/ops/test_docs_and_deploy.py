"""The configuration reference is generated from Settings and committed; the deploy examples run the real commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import Settings
from connector.ops.config_doc import render, sections

ROOT = Path(__file__).resolve().parents[2]


def test_committed_configuration_reference_matches_the_generator() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/configuration.md is stale: run `python -m connector.ops.config_doc > docs/configuration.md`"


def test_reference_lists_every_settings_key() -> None:
    documented = {path: rows for path, _, rows in sections(Settings, "")}
    for name, info in Settings.model_fields.items():
        assert name in documented, f"section [{name}] is missing"
        model = info.annotation
        assert isinstance(model, type)
        for key in model.model_fields:  # type: ignore[attr-defined]
            assert any(row.startswith(f"| `{key}` |") for row in documented[name]), f"{name}.{key}"
    text = render()
    assert "## `[privacy]`" in text and "`event_retention_days` | integer | `395`" in text
    assert "same keys as" in text  # conditions are documented once, then referred to


def test_deploy_examples_parse_and_run_the_connector() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (only needed to parse the deploy examples)")
    docs = {p.name: list(yaml.safe_load_all(p.read_text(encoding="utf-8"))) for p in (ROOT / "deploy").rglob("*.y*ml")}
    [cron] = docs["cronjob.yaml"]
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["sync", "--once"] and cron["spec"]["concurrencyPolicy"] == "Forbid"
    deployment = docs["deployment.yaml"][0]
    pod = deployment["spec"]["template"]["spec"]
    serve = pod["containers"][0]
    assert serve["args"] == ["serve"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz" and serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] > Settings().service.grace_seconds
    config = docs["configmap.yaml"][0]["data"]["config.toml"]
    import tomllib

    assert tomllib.loads(config)["hubspot"]["enabled"] is True
    assert docs["docker-compose.yml"][0]["services"]["connector"]["command"] == ["serve"]
