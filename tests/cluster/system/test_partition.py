"""A worker cut off from the master by a real network partition, then healed.

The worker runs in its own Linux network namespace joined to this one by a veth pair on a
private bridge; taking the veth down partitions it. Skipped where namespaces are not allowed.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import tasks_mod
from cluster import Cluster, wait_for

from taskq import defaults

pytestmark = pytest.mark.timeout(240)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Net:
    """One namespace host on a private bridge; the bridge end is this namespace's side."""

    def __init__(self) -> None:
        tag = f"{random.randrange(16**4):04x}"
        self.ns, self.bridge, self.veth = f"tq{tag}h1", f"tq{tag}br", f"tq{tag}v1"
        subnet = f"10.78.{random.randrange(1, 250)}"
        self.master_ip, self.host_ip = f"{subnet}.254", f"{subnet}.1"

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.master_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        _ip("link", "set", self.veth, "master", self.bridge, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.host_ip}/24", "dev", "eth0")
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")

    def cut(self) -> None:
        _ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        _ip("link", "set", self.veth, "up")

    def down(self) -> None:
        for args in (("netns", "del", self.ns), ("link", "del", self.veth),
                     ("link", "del", self.bridge)):
            subprocess.run(["ip", *args], capture_output=True, timeout=30)


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
    cut_off = cluster.start_worker(prefix=("ip", "netns", "exec", net.ns))
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
