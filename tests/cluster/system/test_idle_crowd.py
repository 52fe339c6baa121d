"""A crowd of idle workers on a real master: its threads stay flat however many connect.

A real ``taskq master`` and 200 simulated workers (``bench.scale_sim``: each makes a real
``taskq worker``'s calls; idle, over its poll's one connection: 200 connections), then a
real task through it all. The master's thread count is read from /proc before and after they join.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import tasks_mod
from cluster import ROOT, TEST_PATH, Cluster, wait_for

import taskq
from taskq.net import serving

CROWD = 200
CONNECTIONS_PER_WORKER = 1  # an idle worker's: its poll's


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def crowd(cluster: Cluster) -> Iterator[subprocess.Popen[str]]:
    """CROWD simulated workers of queue ``default``, killed at the end."""
    env = {**cluster.env, "PYTHONPATH": os.pathsep.join([str(ROOT), TEST_PATH])}
    sim = subprocess.Popen([sys.executable, "-m", "bench.scale_sim", "--connect",
                            cluster.address, "--workers", str(CROWD), "--join-within", "90"],
                           env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        yield sim
    finally:
        sim.kill()
        sim.wait(30)
        for stream in (sim.stdin, sim.stdout):
            if stream is not None:
                stream.close()


def _joined(sim: subprocess.Popen[str]) -> int:
    assert sim.stdin is not None and sim.stdout is not None
    sim.stdin.write("count\n")
    sim.stdin.flush()
    for line in sim.stdout:
        event = json.loads(line)
        if event.get("event") == "count":
            return int(event["joins"])
    raise AssertionError("the simulator ended")


@pytest.mark.timeout(180)
def test_a_crowd_of_idle_workers_adds_no_master_thread(cluster: Cluster) -> None:
    master = cluster.start_master()
    before = _threads(master.pid)
    bound = before + serving.REQUEST_THREADS + serving.HANDSHAKE_THREADS
    with crowd(cluster) as sim:
        wait_for(lambda: _joined(sim) >= CROWD, 120, f"{CROWD} simulated workers to join")
        wait_for(lambda: _open_files(master.pid) >= CROWD * CONNECTIONS_PER_WORKER, 60,
                 "every connection of the crowd")
        assert _threads(master.pid) <= bound, (before, _threads(master.pid))
        cluster.start_worker("--queues", "real")  # a real one among them: work still flows
        with cluster.client() as client:
            add = taskq.task(tasks_mod.add, queue="real")
            assert client.submit(add, 2, 3).result(60) == 5
        assert _threads(master.pid) <= bound
