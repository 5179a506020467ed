"""Poll leases: one replica at a time polls a CRM object's stream, and renews its lease while it works."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from connector.adapters.base import CrmAdapter
from connector.core.clock import Clock
from connector.engine.diff import PERSON_FIELDS
from connector.pipeline.outbox import worker_identity
from connector.pipeline.stages import write
from connector.state.store import Store

log = logging.getLogger("connector.jobs")

# A poller renews its lease after every page; one killed (kill -9) stops renewing, and another replica
# takes the CRM object over this long after its last renewal.
POLL_LEASE_SECONDS = 120.0
# A replica helping the poller looks for queued writes this often when it finds none, backing off to the longest
# (which is also how late it notices that the poller finished).
HELP_IDLE_SECONDS = (0.05, 1.0)
# A helper announces itself on the poll's help lease for this long, renewed every third of it while it helps: the
# poller leaves its writes to helpers while one is announced (a killed helper's announcement runs out by itself).
HELP_LEASE_SECONDS = 10.0
# How often the poller's writers look whether a helper is announced (one store read; none in between).
HELPERS_LOOK_SECONDS = 1.0


@dataclass(frozen=True)
class Replica:
    """How this process shares a CRM object's polling with other replicas of the same store."""

    worker: str = field(default_factory=worker_identity)
    # Poll lease, and how long a killed worker's claimed outbox rows stay unclaimable by the others.
    lease_seconds: float = POLL_LEASE_SECONDS
    # False (sync --once, serve's poll loop): skip an object another replica is polling; True: wait for it.
    wait_for_lease: bool = False


def poll_lease_name(crm: str, object_type: str, stream: str) -> str:
    """One lease per (CRM, object, stream): only its holder fetches that stream and moves its cursor."""
    return f"poll:{crm}:{object_type}:{stream}"


def help_lease_name(poll_lease: str) -> str:
    """The lease helpers of the poll lease `poll_lease` announce themselves on (one holder at a time is enough)."""
    return "help:" + poll_lease.removeprefix("poll:")


def helpers_present(store: Store, poll_lease: str, replica: Replica, clock: Clock) -> Callable[[], bool]:
    """For the poller's writers: whether another replica is announced as helping with `poll_lease` (looked up in
    the store at most every HELPERS_LOOK_SECONDS; a single replica pays one store read a second)."""
    name, shared = help_lease_name(poll_lease), store.shared_clock(clock)
    looked_at: float | None = None
    present = False

    def look() -> bool:
        nonlocal looked_at, present
        now = clock.monotonic()
        if looked_at is None or now - looked_at >= HELPERS_LOOK_SECONDS:
            held = store.get_lease(name)
            present = held is not None and held.holder != replica.worker and held.expires_at > shared.now()
            looked_at = now
        return present

    return look


def take_poll_lease(store: Store, name: str, replica: Replica, clock: Clock) -> bool:
    """Hold the named poll lease (waiting for it if the replica waits); False: another replica has it."""
    while True:
        # Lease expiries are stamped and compared on the database's clock, not this host's [architecture: Quota is shared and finite].
        if store.acquire_lease(name, replica.worker, store.shared_clock(clock).now(), ttl_seconds=replica.lease_seconds):
            return True
        held = store.get_lease(name)
        if held is None:
            continue  # released between the two statements: try again
        if not replica.wait_for_lease:
            log.warning(
                "another replica holds the poll of %s (%s, until %s); skipping it this run",
                name.removeprefix("poll:").replace(":", " "), held.holder, held.expires_at.isoformat(timespec="seconds"),
            )
            return False
        # A dead holder's lease runs out by itself; a live one releases it when its stream is done.
        clock.sleep(max(0.05, min(replica.lease_seconds / 4, (held.expires_at - clock.now()).total_seconds())))


@contextmanager
def keep_leases(store: Store, names: list[str], replica: Replica, clock: Clock) -> Iterator[None]:
    """Renew the held leases every third of their term while the body runs (each until lost to another replica).

    The renewal runs beside the work, so a page slowed down by the rate limiter or Retry-After does
    not lose its lease; a process killed (kill -9) stops renewing, and its leases expire a term later.
    The page loop still re-checks its lease before it moves the cursor (the fence).
    """
    stop = threading.Event()
    live = list(names)
    shared = store.shared_clock(clock)

    def renew() -> None:
        while live and not stop.wait(replica.lease_seconds / 3):
            for name in list(live):
                try:
                    if not store.acquire_lease(name, replica.worker, shared.now(), ttl_seconds=replica.lease_seconds):
                        live.remove(name)
                except Exception as exc:  # a thread boundary: the page loop's own renewal decides
                    log.warning("could not renew the lease %s: %s", name, exc)

    keeper = threading.Thread(target=renew, name="connector-lease-keeper", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def help_while_held(
    store: Store, adapter: CrmAdapter, name: str, replica: Replica, clock: Clock, *, done: Callable[[], bool],
    person_wins: frozenset[str] = PERSON_FIELDS,
) -> int:
    """While another replica holds the poll lease `name`, send the writes it queues; returns how many were sent.

    A replica that does not poll splits the work instead of contending for it: the poller reads, scores and
    routes, and queues each page's writes in the outbox; helpers announce themselves on the help lease
    (`help_lease_name`), the poller's writers then leave the writes to them while the stream runs (`helpers_present`;
    its CPU goes to routing), and helpers claim the outbox's whole batches (claims keep every write to one sender
    [architecture: Nothing lost]; the tail of a partial batch waits for the next page or the poller's last flush)
    and send them through the same shared limiter. Idle, a helper looks again after 50 ms, backing off to a second:
    two store reads per look (the lease, the claimable outbox count), no API call. Returns at once when `done()`
    (the stream is complete), else when the lease is released (the poller finished) or ran out (the caller takes
    it over); its announcement is withdrawn then. `person_wins` ([sync] person_wins, as the poller's `DiffRules`) is
    re-checked on replayed writes.
    """
    if done():
        return 0
    try:
        return _help(store, adapter, name, replica, clock, person_wins)
    finally:
        store.release_lease(help_lease_name(name), replica.worker)


def _help(store: Store, adapter: CrmAdapter, name: str, replica: Replica, clock: Clock, person_wins: frozenset[str]) -> int:
    """help_while_held's loop."""
    sent, idle, announced = 0, HELP_IDLE_SECONDS[0], None
    shared = store.shared_clock(clock)
    while True:
        held = store.get_lease(name)
        if held is None or held.holder == replica.worker or held.expires_at <= shared.now():
            return sent
        if announced is None or clock.monotonic() - announced >= HELP_LEASE_SECONDS / 3:
            # Another helper may hold the announcement: one is enough, and this one takes it over if that one dies.
            store.acquire_lease(help_lease_name(name), replica.worker, shared.now(), ttl_seconds=HELP_LEASE_SECONDS)
            announced = clock.monotonic()
        size = adapter.write_batch_size
        batches = store.count_claimable_outbox(adapter.crm, shared.now()) // size
        results = write(store, adapter, clock.now(), limit=batches * size, worker=replica.worker,
                        lease_seconds=replica.lease_seconds, person_wins=person_wins, clock=clock) if batches > 0 else []
        sent += len(results)
        if results:
            idle = HELP_IDLE_SECONDS[0]
            continue
        clock.sleep(idle)
        idle = min(idle * 2, HELP_IDLE_SECONDS[1])
