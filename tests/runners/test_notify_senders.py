"""Several senders on one outbox (two replicas, or serve's notify loop beside a sync's drain): each notification
is sent exactly once, on SQLite and PostgreSQL; a sender never sends on a claim about to lapse."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from connector.core.clock import FrozenClock, PinnedClock
from connector.engine.notifications import NotificationsConfig
from connector.runners.notify import CLAIM_SECONDS, deliver
from connector.sandbox.receivers import HttpReceiver
from connector.state.store import Store

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"dedupe_key": f"ops:routed:hubspot:contacts:{i}:1", "channel": "ops", "event": "routed",
             "lead_key": f"hubspot:contacts:{i}", "payload": {"event": "routed", "lead": {"id": str(i)}}, "status": "pending",
             "attempts": 0, "next_attempt_at": T0, "created_at": T0} for i in range(n)]


def _config(url: str, **channel: Any) -> NotificationsConfig:
    return NotificationsConfig(enabled=True, drain_seconds=20, channels=[{"name": "ops", "url": url, **channel}])  # type: ignore[list-item]


def test_two_senders_draining_one_outbox_send_each_notification_once(store_url: str) -> None:
    slow = lambda path: time.sleep(0.005) or None  # noqa: E731 - a receiver taking a moment, so the senders overlap
    with HttpReceiver(status=slow) as receiver, Store.open(store_url) as one, Store.open(store_url) as two:
        one.add_notifications(_rows(60))
        config = _config(f"{receiver.url}/hook")
        clock = PinnedClock(T0)  # real monotonic time, the instant pinned: both senders see the rows due
        counts: dict[str, Counter[str]] = {}

        def send(name: str, store: Store) -> None:
            counts[name] = deliver(store, config, clock, drain_seconds=5)

        threads = [threading.Thread(target=send, args=(name, store)) for name, store in (("one", one), ("two", two))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        ids = Counter(message["lead"]["id"] for message in receiver.messages())
        assert sorted(ids) == sorted(str(i) for i in range(60)) and set(ids.values()) == {1}
        assert counts["one"]["sent"] + counts["two"]["sent"] == 60
        assert one.count_notifications() == {"sent": 60}


def test_a_sender_stops_before_its_claim_lapses_and_another_sends_the_rest_once(store_url: str) -> None:
    with HttpReceiver() as receiver, Store.open(store_url) as store:
        store.add_notifications(_rows(10))
        config = _config(f"{receiver.url}/hook", rate_per_second=1 / 20)  # a slow channel: one message every 20 s
        clock = FrozenClock(T0)
        first = deliver(store, config, clock, drain_seconds=0)
        # 0 s, 20 s, 40 s: the next send would outlive the 60 s claim, so this sender gives its batch back.
        assert first["sent"] == 3 and len(receiver.posts) == 3 and clock.monotonic() < CLAIM_SECONDS + 1
        second = deliver(store, config, clock, drain_seconds=600)
        ids = Counter(message["lead"]["id"] for message in receiver.messages())
        assert second["sent"] == 7 and len(ids) == 10 and set(ids.values()) == {1}


def test_a_slow_channel_does_not_hold_up_the_others(store_url: str) -> None:
    with HttpReceiver() as receiver, Store.open(store_url) as store:
        rows = _rows(8)
        for i, row in enumerate(rows):  # interleaved: slow, fast, slow, fast, ...
            row["channel"] = "slow" if i % 2 == 0 else "fast"
            row["dedupe_key"] = f"{row['channel']}:{row['dedupe_key']}"
        store.add_notifications(rows)
        config = NotificationsConfig.model_validate({"enabled": True, "channels": [
            {"name": "slow", "url": f"{receiver.url}/slow", "rate_per_second": 0.1},
            {"name": "fast", "url": f"{receiver.url}/fast"}]})
        clock = FrozenClock(T0)
        sent = deliver(store, config, clock, drain_seconds=600)
        assert sent["sent"] == 8
        # The fast channel's four went out while the slow one waited its 10 s between messages.
        assert [p.path for p in receiver.posts] == ["/slow", "/fast", "/fast", "/fast", "/fast", "/slow", "/slow", "/slow"]
        assert clock.monotonic() == 30.0
