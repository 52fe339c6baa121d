"""A worker's poll renews it as a beat does and answers what a beat would: the interval,
drain, and beat 0 (register again) to a worker the master does not know."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq.defaults import HEARTBEAT_S
from taskq.master.broker import Broker
from taskq.master.state import BrokerState
from taskq.protocol.messages import WorkerHello


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20), None)
    try:
        yield broker
    finally:
        broker.close()


def test_an_unknown_workers_poll_is_told_at_once_to_register(broker: Broker) -> None:
    leased = broker.take("nobody", 1, wait=30)  # answered at once, not after 30 s
    assert (leased.tasks, leased.beat) == ([], 0.0)


def test_a_poll_renews_its_worker_and_says_the_interval_and_a_drain(broker: Broker) -> None:
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))  # (ids as Owned passes them)
    worker = broker._state.workers["w1"]
    worker.last_seen -= 100  # silent for long: the poll is what renews it
    leased = broker.take("w1", 1, wait=0)
    assert (leased.beat, leased.drain) == (HEARTBEAT_S, False)
    assert broker._clock() - worker.last_seen < 1
    assert broker.worker_drain("w1")
    assert broker.take("w1", 1, wait=0).drain


def test_any_call_renews_its_worker_even_an_empty_report(broker: Broker) -> None:
    """A worker waiting for its leases' commit reports nothing (``durable_to``): that call
    too keeps it heard, or one whose poll is all it sends could be lost meanwhile."""
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    worker = broker._state.workers["w1"]
    worker.last_seen -= 100
    broker.report("w1", [], durable_to=0)
    assert broker._clock() - worker.last_seen < 1
    assert broker.report("nobody", []).ticket == 0  # an unknown worker: nothing to renew


def test_a_parked_poll_that_runs_again_renews_nothing(broker: Broker) -> None:
    """A frozen worker's poll, parked in the loop, is run again by others' work (a submit
    wakes every poll that may take it): that rerun is not a sign of life, or a worker that
    stopped could never be found lost."""
    from types import SimpleNamespace

    from taskq.net import serving

    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    worker = broker._state.workers["w1"]
    worker.last_seen -= 100
    silent_since = worker.last_seen
    rerun = serving.Pending(loop=None, conn=SimpleNamespace(peer=None),  # type: ignore[arg-type]
                            run=lambda: None, parkable=False, deadline=0.0)  # it parked once
    serving._current.pending = rerun
    try:
        assert serving.resumed()
        leased = broker.take("w1", 1, wait=0)
    finally:
        serving._current.pending = None
    assert leased.beat > 0  # still known: answered as usual
    assert worker.last_seen == silent_since  # ... but not renewed
    broker.take("w1", 1, wait=0)  # a fresh poll (outside the loop: not a rerun) renews
    assert broker._clock() - worker.last_seen < 1
