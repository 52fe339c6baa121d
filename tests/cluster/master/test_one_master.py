"""One master per journal, and a port in use said in one line: a second ``taskq master`` on
the same --state (a typo in the port, a second unit) is refused at once and names the one
holding it, and the first keeps serving; a master killed with SIGKILL leaves nothing that
stops the next one."""

from __future__ import annotations

import signal
import subprocess
import sys

import tasks_mod
from cluster import Cluster


def _second(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", "master", "--host", "127.0.0.1",
                           "--http", "off", *args], env=cluster.env, capture_output=True,
                          text=True, timeout=60, cwd=cluster.tmp)


def test_a_second_master_on_the_same_journal_is_refused(cluster: Cluster) -> None:
    journal = cluster.tmp / "state" / "journal.db"
    first = cluster.start_master("--state", str(journal))
    out = _second(cluster, "--port", "0", "--state", str(journal))
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and "is in use by another taskq master" in line, line
    assert f"pid {first.pid}" in line, line
    cluster.start_worker()
    with cluster.client() as client:  # the first still serves
        assert client.submit(tasks_mod.add, 1, 2).result(60) == 3


def test_a_killed_masters_journal_opens_again(cluster: Cluster) -> None:
    journal = cluster.tmp / "state" / "journal.db"
    first = cluster.start_master("--state", str(journal))
    first.signal_group(signal.SIGKILL)
    first.wait(30)
    cluster.start_master("--state", str(journal))  # the kernel let go of the lock


def test_a_port_in_use_is_one_line_that_names_it(cluster: Cluster) -> None:
    cluster.start_master()
    port = cluster.address.rsplit(":", 1)[1]
    out = _second(cluster, "--port", port, "--in-memory")
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and f"port {port} on 127.0.0.1 is in use" in line, line
