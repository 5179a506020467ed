"""CDC fixtures: a Salesforce sandbox with its Pub/Sub server. The settings and the subscriber thread are in
tests/cdc_fixtures.py, shared with tests/adapters/salesforce/cdc/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox.salesforce import SalesforceSandbox


@pytest.fixture
def sandbox() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=11, leads=30, pubsub=True) as sb:
        yield sb
