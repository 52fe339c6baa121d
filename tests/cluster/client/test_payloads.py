"""Large arguments and results through a real cluster: whole, of the right type, and
journaled by a durable master (they travel out of band, as views into received buffers)."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster

pytestmark = pytest.mark.timeout(180)


def _sha(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def test_large_arguments_and_results_arrive_whole(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master("--state", str(tmp_path / "journal.db"))
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    arguments = [os.urandom(2**20), bytearray(os.urandom(3 * 2**20)), os.urandom(64 * 1024),
                 os.urandom(64 * 1024 - 1), b"", os.urandom(100)]
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.digest, data, 2**20 + i)
                   for i, data in enumerate(arguments * 3)]
        outcomes = [f.result(120) for f in futures]
    for i, (data, (sha, kind, back)) in enumerate(zip(arguments * 3, outcomes, strict=True)):
        assert sha == _sha(data)
        assert kind == type(data).__name__
        assert back == bytes(data[:1]) * (2**20 + i)


def test_a_journaled_large_argument_survives_a_killed_master(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    text = os.urandom(50 * 1024).hex()  # 100 KiB on the command line: sent out of band
    out = cluster.cli("submit", "tasks_mod:digest", text, "--job", "big")
    assert out.returncode == 0, out.stderr  # journaled before the command returned
    master.signal_group(signal.SIGKILL)
    master.wait(30)
    cluster.start_master("--state", str(journal), port=port)
    status = cluster.status()  # queued, or held back a moment for a worker to claim it
    assert sum(status["pending"].values()) + status["waiting"] == 1
    cluster.start_worker()
    out = cluster.cli("results", "big", "--wait", "--json", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256(text.encode()).hexdigest() in out.stdout
