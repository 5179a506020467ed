"""A sync or backfill keeps start-up's objects out of the cyclic collector for the run, and undoes it after."""

from __future__ import annotations

import gc

from connector.runners.jobs import start_up_kept_out_of_gc


def test_start_up_objects_are_frozen_for_the_run_and_everything_is_restored_after() -> None:
    before = gc.get_threshold()
    kept_from_start_up = [[i] for i in range(1000)]  # lists: objects the cyclic collector tracks
    with start_up_kept_out_of_gc():
        assert gc.get_freeze_count() >= len(kept_from_start_up)
        assert gc.get_threshold()[0] == 10_000  # young collections every 10,000 allocations, not 700
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_a_run_that_fails_restores_the_collector_too() -> None:
    before = gc.get_threshold()
    try:
        with start_up_kept_out_of_gc():
            raise RuntimeError("the run stopped")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
