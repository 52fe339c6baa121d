"""A master answers a worker's report before its journal commits the results: the worker
keeps them until a later answer says they are journaled, and re-sends them to the master
that restarts after a SIGKILL. No task then runs twice."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import tasks_mod
from cluster import Cluster, wait_for

TASKS = 8


def test_results_taken_but_not_journaled_survive_a_master_sigkill(
        cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    marks, release = tmp_path / "marks", tmp_path / "release"
    marks.mkdir()
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker(procs=TASKS)
    names = [f"t{i}" for i in range(TASKS)]
    stall = sqlite3.connect(journal, timeout=5, isolation_level=None)
    try:
        with cluster.client() as client:
            futures = [client.submit(tasks_mod.mark_then_hold, str(marks), name, str(release))
                       for name in names]  # journaled before submit returns
            wait_for(lambda: all(tasks_mod.runs_of(str(marks), n) for n in names), 60,
                     "every task to start")
            stall.execute("BEGIN IMMEDIATE")  # another writer: the master's commits wait
            release.touch()
            assert [f.result(60) for f in futures] == names  # taken, answered, delivered
        [[journaled]] = stall.execute("SELECT COUNT(*) FROM results").fetchall()
        assert journaled == 0, "the results were journaled: nothing to re-send"
        master.signal_group(signal.SIGKILL)
        master.wait(30)
    finally:
        stall.close()
    cluster.start_master("--state", str(journal), port=port)
    wait_for(lambda: cluster.status()["done"] == TASKS, 60,
             "the restored master to take every re-sent result")
    assert {n: tasks_mod.runs_of(str(marks), n) for n in names} == dict.fromkeys(names, 1)
    status = cluster.status()
    assert sum(status["pending"].values()) == status["leased"] == status["waiting"] == 0
