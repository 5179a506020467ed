"""The intake queue's room accounting: what waits is what the worker has not claimed, whatever the thread order."""

from __future__ import annotations

import threading

from connector.runners.service.intake import IntakeQueue


def test_a_row_the_worker_claimed_before_its_handler_pushed_it_takes_no_room() -> None:
    queue = IntakeQueue(2)
    assert queue.try_reserve(1)  # the handler holds room while it writes row 7
    queue.discard([7])  # the worker's sweep claims row 7 from the store first
    queue.push([7], 1)  # the handler's push comes after
    assert len(queue) == 0
    assert queue.try_reserve(2), "the queue is empty: two more rows fit"
    queue.push([8, 9], 2)
    assert len(queue) == 2 and not queue.try_reserve(1)


def test_rows_pushed_in_the_usual_order_wait_until_taken_or_claimed() -> None:
    queue = IntakeQueue(3)
    assert queue.try_reserve(2)
    queue.push([1, 2], 2)
    assert len(queue) == 2
    queue.discard([1])  # claimed straight from the store: no longer waits
    assert len(queue) == 1
    assert queue.take(timeout=0, window=0, stop=threading.Event()) == [2]
    assert len(queue) == 0


def test_claims_made_while_no_handler_holds_room_are_not_remembered() -> None:
    queue = IntakeQueue(2)
    queue.discard([5])  # no reservation outstanding: row 5 was pushed (and taken) long ago
    assert queue.try_reserve(1)
    queue.push([5], 1)  # an id the store re-used is counted as waiting like any other
    assert len(queue) == 1
    assert queue.try_reserve(1)
    queue.discard([6])  # a claim during a reservation is remembered only until no handler holds room
    queue.cancel(1)  # that handler's write failed: nothing pushed, no room held any more
    assert queue.try_reserve(1)
    queue.push([6], 1)
    assert len(queue) == 2
