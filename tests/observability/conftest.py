"""Fixtures for the logging tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """configure_logging changes process-wide loggers: put them back for the tests that follow."""
    root, ours = logging.getLogger(), logging.getLogger("connector")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate)
    try:
        yield
    finally:
        root.handlers[:], _, ours.handlers[:], _, ours.propagate = saved
        root.setLevel(saved[1])
        ours.setLevel(saved[3])
