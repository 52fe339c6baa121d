"""The batched wire: ordering, no loss, no duplicate outcome, and backpressure."""

from __future__ import annotations

import signal
import threading

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(180)


def test_backpressure_when_the_master_is_full(cluster: Cluster) -> None:
    cluster.start_master("--max-pending", "100")
    with cluster.client() as client:
        futures: list[taskq.TaskFuture] = []

        def submit_all() -> None:
            futures.extend(client.submit(tasks_mod.add, i, 1) for i in range(3000))

        submitter = threading.Thread(target=submit_all)
        submitter.start()
        wait_for(lambda: sum(cluster.status()["pending"].values()) == 100, 60, "a full master")
        assert sum(cluster.status()["pending"].values()) == 100
        cluster.start_worker()
        submitter.join(120)
        assert not submitter.is_alive()
        assert [f.result(120) for f in futures] == [i + 1 for i in range(3000)]
    status = cluster.status()
    assert status["done"] == 3000 and status["failed"] == 0


def test_many_small_submits_are_batched_and_resolve_once(running: Cluster) -> None:
    with running.client() as client:
        futures = [client.submit(tasks_mod.add, i, 0) for i in range(20_000)]
        assert [f.result(120) for f in futures] == list(range(20_000))
        chunks = list(client.map(tasks_mod.add, range(10_000), range(10_000), chunksize=250))
        assert chunks == [2 * i for i in range(10_000)]
    status = running.status()
    assert status["done"] == 20_000 + 40 and status["leased"] == 0


def test_client_gives_up_on_a_master_that_stays_away(cluster: Cluster) -> None:
    master = cluster.start_master()
    client = cluster.client(reconnect_for=2.0)
    try:
        future = client.submit(tasks_mod.add, 1, 1)
        wait_for(lambda: sum(cluster.status()["pending"].values()) == 1, 30, "the task queued")
        master.signal_group(signal.SIGKILL)
        with pytest.raises(taskq.ConnectError, match="could not connect"):
            future.result(60)
    finally:
        client.shutdown(wait=False)
