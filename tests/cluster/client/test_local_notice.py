"""`taskq.submit` with no TASKQ_ADDRESS starts a local cluster: it says so, once a process."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cluster import Cluster

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
import taskq, tasks_mod
print(taskq.submit(tasks_mod.add, 1, 2).result(60))
with taskq.Client() as second:  # a second local cluster in the same process: no second line
    print(second.submit(tasks_mod.add, 2, 3).result(60))
"""


def test_a_local_cluster_is_said_once_on_stderr(cluster: Cluster) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "TASKQ_AUTHKEY"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, text=True,
                         capture_output=True, timeout=100, cwd=cluster.tmp)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "5"]
    said = [line for line in out.stderr.splitlines() if "local cluster" in line]
    assert len(said) == 1, out.stderr
    assert "TASKQ_ADDRESS=HOST:PORT" in said[0] and "127.0.0.1:" in said[0], said
