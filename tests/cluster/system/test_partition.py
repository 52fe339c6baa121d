"""A worker cut off from the master by a real network partition, then healed.

The worker runs in its own Linux network namespace joined to this one by a veth pair on a
private bridge; taking the veth down partitions it. Skipped where namespaces are not allowed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import tasks_mod
from cluster import Cluster, wait_for

from bench.netns import Net
from taskq import defaults

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def net() -> Iterator[Net]:
    net = Net()
    try:
        net.up()
    except (OSError, subprocess.CalledProcessError) as exc:
        net.down()
        pytest.skip(f"network namespaces are not available here: {exc}")
    try:
        yield net
    finally:
        net.down()


@pytest.mark.parametrize("long_cut", [False, True], ids=["short-cut", "long-cut"])
def test_partitioned_worker_loses_leases_and_rejoins(cluster: Cluster, net: Net,
                                                     long_cut: bool) -> None:
    cluster.start_master(host=net.master_ip)
    cut_off = cluster.start_worker(prefix=net.prefix)
    cluster.wait_workers(1)
    outcomes: dict[int, int] = {}
    lock = threading.Lock()

    def seen(i: int) -> None:
        with lock:
            outcomes[i] = outcomes.get(i, 0) + 1

    with cluster.client() as client:
        futures = [client.submit(tasks_mod.sleep_then, 0.5, i) for i in range(12)]
        for i, future in enumerate(futures):
            future.add_done_callback(lambda _f, i=i: seen(i))
        wait_for(lambda: cluster.status()["leased"] >= 1, 60, "the worker to lease tasks")
        net.cut()
        cut_at = time.monotonic()
        cluster.start_worker()
        if long_cut:  # long enough for the worker's beat to go unanswered: it reconnects
            wait_for(lambda: "master_link_lost" in cut_off.stderr(), 60, "the link to drop")
            # within the master's lost deadline (5 s) and a beat, not a call's 15 s timeout
            assert time.monotonic() - cut_at < defaults.CALL_TIMEOUT_S
        assert [f.result(120) for f in futures] == list(range(12))
        assert "worker_lost" in cluster.procs[0].stderr()
        net.heal()
        # TCP may carry the old connection across a short cut, or the worker reconnects:
        # either way it registers again and is listed beside the other worker.
        wait_for(lambda: len(cluster.status()["workers"]) == 2, 120, "both workers listed")
        assert "worker_rejoined" in cut_off.stderr() or \
            "master_link_restored" in cut_off.stderr()
        again = client.submit(tasks_mod.add, 1, 1)
        assert again.result(60) == 2
    assert outcomes == {i: 1 for i in range(12)}
    status = json.loads(cluster.cli("status", "--json").stdout)
    assert status["leased"] == 0 and sum(status["pending"].values()) == 0
