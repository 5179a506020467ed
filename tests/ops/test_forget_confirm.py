"""`connector forget` at a terminal asks first; `--yes` (and a script without a terminal) is not asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import example_config_path
from connector.ops import forget

from .conftest import Ops


def test_at_a_terminal_no_answer_erases_nothing(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forget, "is_interactive", lambda: True)
    ref = f"hubspot:{ops.ids()[1]}"
    result = CliRunner(env=ops.env).invoke(main, ["forget", ref, "--config", str(example_config_path())], input="n\n")
    assert result.exit_code == 1
    assert f"Erase everything the connector holds about {ref}? It cannot be undone [y/N]: n" in result.output
    assert "erased personal data" not in result.output


def test_at_a_terminal_yes_erases(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forget, "is_interactive", lambda: True)
    ref = f"hubspot:{ops.ids()[1]}"
    asked = CliRunner(env=ops.env).invoke(main, ["forget", ref, "--config", str(example_config_path())], input="y\n")
    assert asked.exit_code == 0 and "erased personal data of hubspot:contacts:" in asked.output
    scripted = ops.run("forget", ref, "--yes")
    assert "Erase everything" not in scripted.output and scripted.stdout.startswith("erased personal data of")
