"""What joining costs the master, counted in its log: each connection is one handshake
(``peer_authenticated``), and a peer opens no connection it does not use. A worker joins in
two (its poll and its pump; one while it has run nothing), `taskq status` in one, a client in
one per thread that calls."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

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


def _connections(pid: int, port: int) -> int:
    """The process's established TCP connections to ``port`` (from /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def test_a_worker_that_has_run_nothing_holds_one_connection(cluster: Cluster) -> None:
    """Until it runs a task, a worker is kept heard by its poll alone: one connection, not
    lost however long it idles (here well past --lost-after), told of a drain by its poll's
    answer; its second connection opens when it first reports."""
    master = cluster.start_master("--lost-after", "1")
    port = int(cluster.address.rsplit(":", 1)[1])
    worker = cluster.start_worker()
    cluster.wait_workers(1)
    assert _connections(worker.pid, port) == 1
    joined = time.monotonic()

    def renewed_past_lost_after() -> bool:  # heard from again, after it would be lost
        rows = cluster.status()["workers"]
        assert rows, master.stderr()[-2000:]  # lost: its polls did not renew it
        return time.monotonic() - rows[0]["seen_ago"] > joined + 3
    wait_for(renewed_past_lost_after, 30, "the worker's poll to renew it past --lost-after")
    assert "worker_lost" not in master.stderr()
    assert _connections(worker.pid, port) == 1
    _one_task(cluster)
    wait_for(lambda: _connections(worker.pid, port) == 2, 30, "the pump's connection")
    name = cluster.status()["workers"][0]["worker_id"]
    assert cluster.cli("worker", "drain", name).returncode == 0
    assert worker.wait(30) == 0
