"""What joining costs the master, counted in its log: each connection is one handshake
(``peer_authenticated``), and a peer opens no connection it does not use. A worker joins in
two (its poll and its pump), `taskq status` in one, a client in one per thread that calls."""

from __future__ import annotations

import pytest
import tasks_mod
from cluster import Cluster, Proc, wait_for

pytestmark = pytest.mark.timeout(120)


def _handshakes(master: Proc) -> int:
    return master.stderr().count('"peer_authenticated"')


def _one_task(cluster: Cluster) -> None:
    with cluster.client() as client:
        assert client.submit(tasks_mod.add, 1, 2).result(60) == 3


def test_a_worker_joins_in_two_handshakes_and_status_takes_one(cluster: Cluster) -> None:
    master = cluster.start_master("--log-level", "info")
    before = _handshakes(master)
    cluster.start_worker()
    wait_for(lambda: "worker_joined" in master.stderr(), 30, "the worker to join")
    _one_task(cluster)  # run by the worker: both its connections are open by then
    worker_and_client = _handshakes(master) - before
    _one_task(cluster)
    client = _handshakes(master) - before - worker_and_client
    assert worker_and_client - client == 2
    assert 1 <= client <= 3  # the caller's thread, and the client's own threads
    assert cluster.cli("status").returncode == 0
    assert _handshakes(master) - before - worker_and_client - client == 1
    joined = [ln for ln in master.stderr().splitlines() if "peer_authenticated" in ln]
    assert cluster.authkey not in "\n".join(joined)  # a fingerprint, never the key
