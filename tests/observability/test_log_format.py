"""Log lines on stderr: text for a person at a terminal, JSON for a collector, unless [logging] as_json says."""

from __future__ import annotations

import io
import json
import logging

import pytest

from connector.observability.logging import configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "as_json", "expect_json"), [
    (True, None, False), (False, None, True), (True, True, True), (False, False, False),
])
def test_unset_as_json_means_text_on_a_terminal_and_json_elsewhere(
    tty: bool, as_json: bool | None, expect_json: bool, logging_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", as_json=as_json)
    logging.getLogger("connector.jobs").warning("routing: rep hal.former is inactive")
    [line] = stream.getvalue().splitlines()
    assert "routing: rep hal.former is inactive" in line
    assert line.startswith("{") is expect_json
    if expect_json:
        assert json.loads(line)["msg"] == "routing: rep hal.former is inactive"
