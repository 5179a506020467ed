"""Config: TOML + CONNECTOR_* env, secrets from files, every bad key reported at once with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_settings
from connector.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "config.example.toml")
    assert settings.hubspot.base_url == "https://api.hubapi.com"
    assert settings.store.url.startswith("sqlite:///")


def test_check_config_command_exits_zero_on_the_example() -> None:
    result = CliRunner().invoke(main, ["check-config", str(ROOT / "config.example.toml")])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_every_bad_key_is_named_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, """
[hubspot]
enabled = true
acess_token = "typo"
requests_per_10s = 0
object_type = "deals"
[store]
url = "mysql://nope"
[sync]
batch_size = "many"
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    paths = {p.path for p in info.value.problems}
    assert {"hubspot.acess_token", "hubspot.requests_per_10s", "hubspot.object_type", "store", "sync.batch_size"} <= paths
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    for p in ("hubspot.acess_token", "hubspot.object_type", "sync.batch_size"):
        assert p in result.output


def test_environment_overrides_file_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[hubspot]\nenabled = true\naccess_token = "from-file"\nrequests_per_10s = 100\n')
    monkeypatch.setenv("CONNECTOR_HUBSPOT__ACCESS_TOKEN", "from-env")
    settings = load_settings(path)
    assert settings.hubspot.access_token is not None
    assert settings.hubspot.access_token.get_secret_value() == "from-env"
    assert settings.hubspot.requests_per_10s == 100


def test_secret_from_file_and_never_printed(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("pat-secret-123\n")
    settings = load_settings(write(tmp_path, f'[hubspot]\nenabled = true\naccess_token_file = "{secret}"\n'))
    assert settings.hubspot.access_token is not None
    assert settings.hubspot.access_token.get_secret_value() == "pat-secret-123"
    assert "pat-secret-123" not in repr(settings)


def test_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, '[hubspot]\nenabled = true\naccess_token_file = "/nonexistent/token"\n'))
    assert "access_token_file" in str(info.value)


def test_enabled_without_token_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "[hubspot]\nenabled = true\n"))
    assert "access_token" in str(info.value)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[hubspot\n"))


def example_with(*edits: tuple[str, str]) -> str:
    """The shipped example config with each (old, new) text replaced once."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_check_config_lists_every_stage_in_one_run_with_near_misses(tmp_path: Path) -> None:
    # A typo in [hubspot] fails the Settings shape; the scoring field and routing pool typos are found by the
    # engine's checks, which still run, so the operator fixes all three after one run.
    path = write(tmp_path, example_with(
        ("[hubspot]\n", '[hubspot]\nacess_token = "typo"\n'),
        ('when = { field = "country", op = "in"', 'when = { field = "contry", op = "in"'),
        ('pool = "enterprise"', 'pool = "enterprize"'),
    ))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert "- hubspot.acess_token: unknown key; did you mean 'access_token'?" in lines
    assert "- scoring.models.core.rules[0].when.field: unknown field 'contry'; did you mean 'country'?" in lines
    assert "- routing.rules[0].pool: unknown pool 'enterprize'; did you mean 'enterprise'?" in lines
    assert "3 configuration problem(s)" in result.output
    # No list of every known name: the longest line stays readable.
    assert max(len(line) for line in lines) < 160, result.output


def test_an_unknown_name_without_a_near_miss_says_where_names_come_from(tmp_path: Path) -> None:
    path = write(tmp_path, example_with(('when = { field = "country", op = "in"', 'when = { field = "zzz", op = "in"')))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    message = next(line for line in result.output.splitlines() if "'zzz'" in line)
    assert message.strip() == (
        "- scoring.models.core.rules[0].when.field: unknown field 'zzz'; use a lead attribute (country, state, "
        "email_domain, employees, industry, title, lead_source, ...), extra.NAME (a mapped CRM property), "
        "raw.NAME (a field's CRM text, e.g. raw.country) or engagement.NAME"
    )
