"""A durable master answers a worker's take once the journal has its leases: the worker may
start them at once, with no call to confirm. When the journal is slow to commit, the answer
goes after a bound with the leases' ticket instead, and the worker confirms before it
starts them (``taskq.master.broker_workers``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tasks_mod
from cluster import Cluster, wait_for

from taskq.net import link
from taskq.net.connection import parse_address
from taskq.protocol import names
from taskq.protocol.messages import WorkerHello

pytestmark = pytest.mark.timeout(120)


def _holders(journal: Path) -> dict[str, str]:
    with sqlite3.connect(journal, timeout=10) as db:  # another connection: what was committed
        return dict(db.execute("SELECT task_id, holder FROM tasks").fetchall())


@dataclass
class Probe:
    """A durable master with one task queued, and a hand-made worker to lease it."""

    journal: Path
    remote: Any
    worker_id: str


@pytest.fixture
def probe(cluster: Cluster, tmp_path: Path) -> Iterator[Probe]:
    journal = tmp_path / "journal.db"
    cluster.start_master("--state", str(journal))
    remote = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode()).remote
    worker_id = names.new_worker_claim("probe", 1)
    remote.register(WorkerHello(worker_id, "probe", 1, 1, ("default",)))
    client = cluster.client()
    try:
        client.submit(tasks_mod.add, 1, 2)  # journaled before submit returns
        yield Probe(journal, remote, worker_id)
    finally:  # the probe holds the task: the client does not wait for it
        client.shutdown(wait=False, cancel_futures=True)


def test_a_take_is_answered_once_its_leases_are_journaled(probe: Probe) -> None:
    leased = probe.remote.take(probe.worker_id, 1, wait=10)
    [task] = leased.tasks
    assert leased.ticket == 0, "answered before its leases were journaled"
    assert _holders(probe.journal) == {task.task_id: names.worker_name(probe.worker_id)}


def test_a_take_whose_commit_stalls_goes_with_its_ticket(probe: Probe) -> None:
    wait_for(lambda: list(_holders(probe.journal).values()) == [""], 30, "the task journaled")
    stall = sqlite3.connect(probe.journal, timeout=10, isolation_level=None)
    try:
        stall.execute("BEGIN IMMEDIATE")  # another writer: the master's commits wait
        leased = probe.remote.take(probe.worker_id, 1, wait=10)
    finally:
        stall.close()
    [task] = leased.tasks
    assert leased.ticket > 0, "a stalled journal cannot have committed the lease"
    wait_for(lambda: probe.remote.report(probe.worker_id, [], durable_to=leased.ticket)
             .durable >= leased.ticket, 30, "the ticket to be committed once the journal is free")
    assert _holders(probe.journal) == {task.task_id: names.worker_name(probe.worker_id)}
