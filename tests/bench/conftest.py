"""The bench scripts run in-process here; they quiet loggers for their own runs, so the package puts the levels back when it is done."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="package")
def logger_levels_restored() -> Iterator[None]:
    manager = logging.Logger.manager
    saved = {name: lg.level for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger) and name.startswith("connector")}
    yield
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name.startswith("connector"):
            lg.setLevel(saved.get(name, logging.NOTSET))
