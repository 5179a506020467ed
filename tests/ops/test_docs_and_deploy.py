"""The configuration reference is generated from Settings and committed; the deploy examples run the real commands;
the image is built reproducibly (pinned base, hashed lock, bounded dependencies, versioned tags)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _runtime_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(text) for text in project["dependencies"]]


def _lock() -> dict[str, tuple[Version, list[str]]]:
    """requirements.lock as name -> (pinned version, its sha256 hashes)."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8").replace("\\\n", " ")
    pinned: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)\s*$", line.split("  #")[0])
        assert match, f"requirements.lock: not an exact pin with hashes: {line!r}"
        pinned[canonicalize_name(match[1])] = (Version(match[2]), re.findall(r"sha256:([0-9a-f]{64})", match[3]))
    return pinned


def test_lock_pins_every_runtime_and_build_dependency_with_hashes() -> None:
    lock = _lock()
    assert lock and all(hashes for _, hashes in lock.values()), [name for name, (_, h) in lock.items() if not h]
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    # The image builds the project with --no-build-isolation, so its build backend comes from the lock as well.
    for requirement in [*_runtime_requirements(), *(Requirement(text) for text in build["requires"])]:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is missing from requirements.lock: regenerate it (command in its header)"
        version, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject's {requirement}: regenerate it"
        )
    assert "psycopg-binary" in lock  # psycopg[binary]: the image has no libpq of its own


def test_unstable_and_zero_x_dependencies_have_upper_bounds() -> None:
    bounded = {canonicalize_name(r.name): r for r in _runtime_requirements() if any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)}
    for name in ("fastapi", "uvicorn", "holidays", "prometheus-client", "protobuf"):
        assert name in bounded, f"{name} needs an upper bound in pyproject.toml"
    for requirement in _runtime_requirements():
        lowest = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        if lowest and lowest[0].major == 0:
            assert canonicalize_name(requirement.name) in bounded, f"{requirement}: a 0.x dependency needs an upper bound"


def test_image_is_built_from_a_pinned_base_and_hashed_dependencies_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = re.sub(r"\\\n\s*", " ", dockerfile)
    bases = re.findall(r"^FROM\s+(\S+)", instructions, re.MULTILINE)
    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), f"base image {base} is not pinned to a patch release"
    installs = re.findall(r"pip install[^&\n]*", instructions)
    assert any("--require-hashes" in cmd and "-r requirements.lock" in cmd for cmd in installs), installs
    # Anything else pip installs must not resolve dependencies (they would come unpinned from the index).
    assert all("--require-hashes" in cmd or "--no-deps" in cmd for cmd in installs), installs
    assert "COPY requirements.lock" in instructions


def test_deploy_examples_run_a_released_version_never_latest() -> None:
    version = _pyproject()["project"]["version"]  # type: ignore[index]
    images = [
        (path.name, image)
        for path in (ROOT / "deploy").rglob("*.y*ml")
        for image in re.findall(r"^\s*image:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert images
    for name, image in images:
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} needs an explicit version tag"
        if repository == "crm-lead-connector":
            assert tag == version, f"{name}: {image} is not this release ({version})"
