"""Durable enqueue: a process submits, flushes and exits at once; the master is then
SIGKILLed and restarted from its journal, and every task it submitted still runs."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

TASKS = 200

# a web request's handler: submit, flush, answer with the ids, and the process is gone
WEB = textwrap.dedent("""
    import os, sys
    import taskq, tasks_mod
    client = taskq.Client(sys.argv[1])
    futures = [client.submit(tasks_mod.mark_run, sys.argv[2], f"t{{i}}")
               for i in range({tasks})]
    client.flush(timeout=60)
    print(len(futures), flush=True)
    os._exit(0)  # no shutdown: nothing waits for the tasks to run
""").format(tasks=TASKS)


def test_flushed_tasks_survive_the_submitter_exiting_and_a_master_sigkill(
        cluster: Cluster, tmp_path: Path) -> None:
    journal, marks = tmp_path / "journal.db", tmp_path / "marks"
    marks.mkdir()
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    out = subprocess.run([sys.executable, "-c", WEB, cluster.address, str(marks)],
                         env=cluster.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(TASKS)]
    master.signal_group(signal.SIGKILL)  # at once: only what the journal has survives
    master.wait(30)

    cluster.start_master("--state", str(journal), port=port)
    cluster.start_worker(procs=2)
    wait_for(lambda: cluster.status()["done"] == TASKS, 120, "every flushed task to run")
    runs = {f"t{i}": tasks_mod.runs_of(str(marks), f"t{i}") for i in range(TASKS)}
    assert runs == dict.fromkeys(runs, 1)


def test_flush_waits_for_the_journal_and_says_when_it_cannot(
        cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    cluster.start_master("--state", str(journal))
    stall = sqlite3.connect(journal, timeout=5, isolation_level=None)
    client = cluster.client()
    try:
        client.flush(timeout=30)  # nothing submitted: at once
        stall.execute("BEGIN IMMEDIATE")  # another writer: the master's commits wait
        future = client.submit(pow, 2, 5)
        with pytest.raises(TimeoutError, match="did not journal the tasks within 1 s"):
            client.flush(timeout=1)
        stall.execute("COMMIT")
        client.flush(timeout=60)
        [[kept]] = stall.execute("SELECT COUNT(*) FROM tasks").fetchall()
        assert kept == 1
        assert not future.done()  # journaled, and no worker: still waiting to run
    finally:
        client.shutdown(wait=False, cancel_futures=True)  # no worker: nothing would end
        stall.close()


def test_flush_on_an_in_memory_master_returns_once_the_master_has_the_tasks(
        cluster: Cluster) -> None:
    cluster.start_master()
    with cluster.client() as client:
        futures = [client.submit(pow, 2, i) for i in range(50)]
        client.flush(timeout=30)
        status = cluster.status()  # no worker yet: all 50 wait on the master
        assert sum(status["pending"].values()) == 50
        cluster.start_worker()
        assert [f.result(30) for f in futures] == [2**i for i in range(50)]
