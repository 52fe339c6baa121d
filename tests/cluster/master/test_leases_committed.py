"""A durable master answers a worker's take once the journal has its leases: the worker may
start them at once, with no call to confirm. When the journal is slow to commit, the answer
goes after a bound with the leases' ticket instead, and the worker confirms before it
starts them (``taskq.master.broker_workers``)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
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


@contextlib.contextmanager
def _client(cluster: Cluster) -> Iterator[Any]:
    """A client that does not wait, when it closes, for the task the probe holds."""
    client = cluster.client()
    try:
        yield client
    finally:
        client.shutdown(wait=False, cancel_futures=True)


def _worker(cluster: Cluster) -> tuple[object, str]:
    remote = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode()).remote
    worker_id = names.new_worker_claim("probe", 1)
    remote.register(WorkerHello(worker_id, "probe", 1, 1, ("default",)))
    return remote, worker_id


def test_a_take_is_answered_once_its_leases_are_journaled(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    cluster.start_master("--state", str(journal))
    remote, worker_id = _worker(cluster)
    with _client(cluster) as client:
        client.submit(tasks_mod.add, 1, 2)  # journaled before submit returns
        leased = remote.take(worker_id, 1, wait=10)  # type: ignore[attr-defined]
        [task] = leased.tasks
        assert leased.ticket == 0, "answered before its leases were journaled"
        assert _holders(journal) == {task.task_id: names.worker_name(worker_id)}


def test_a_take_whose_commit_stalls_goes_with_its_ticket(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    cluster.start_master("--state", str(journal))
    remote, worker_id = _worker(cluster)
    with _client(cluster) as client:
        client.submit(tasks_mod.add, 1, 2)
        wait_for(lambda: list(_holders(journal).values()) == [""], 30, "the task journaled")
        stall = sqlite3.connect(journal, timeout=10, isolation_level=None)
        try:
            stall.execute("BEGIN IMMEDIATE")  # another writer: the master's commits wait
            leased = remote.take(worker_id, 1, wait=10)  # type: ignore[attr-defined]
        finally:
            stall.close()
        [task] = leased.tasks
        assert leased.ticket > 0, "a stalled journal cannot have committed the lease"
        wait_for(lambda: remote.report(  # type: ignore[attr-defined]
            worker_id, [], durable_to=leased.ticket).durable >= leased.ticket, 30,
            "the ticket to be committed once the journal is free")
        assert _holders(journal) == {task.task_id: names.worker_name(worker_id)}
