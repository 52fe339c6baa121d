"""Callbacks and dependencies that may fail, on a real master and worker: ``on_failure``
runs once a task failed for good (after its retries), ``on_success`` once it returned,
``allow_failure`` hands a failed dependency's exception to its dependent; a callback is
made exactly once, across a master SIGKILL."""

from __future__ import annotations

import functools
import signal
import sqlite3
from pathlib import Path

import nest_tasks
import pytest
from cluster import Cluster, wait_for

import taskq


def test_on_failure_runs_once_after_the_retries_and_on_success_gets_the_value(
        running: Cluster, tmp_path: Path) -> None:
    flaky = taskq.task(nest_tasks.fail, retries=2,
                       on_failure=functools.partial(nest_tasks.on_failure, str(tmp_path)))
    fine = taskq.task(nest_tasks.succeed,
                      on_success=functools.partial(nest_tasks.on_success, str(tmp_path)),
                      on_failure=functools.partial(nest_tasks.on_failure, str(tmp_path)))
    with running.client() as client:
        bad, good = client.submit(flaky, str(tmp_path), "flaky"), client.submit(fine, 42)
        with pytest.raises(ValueError, match="flaky failed"):
            bad.result(60)
        assert good.result(60) == 42
        wait_for(lambda: nest_tasks.marks(str(tmp_path), "failure")
                 and nest_tasks.marks(str(tmp_path), "success"), 60, "both callbacks")
    assert len(nest_tasks.marks(str(tmp_path), "flaky")) == 3  # the first run and 2 retries
    assert nest_tasks.marks(str(tmp_path), "failure") == [
        f"{bad.task_id} ValueError: flaky failed"]
    assert nest_tasks.marks(str(tmp_path), "success") == [f"{good.task_id} 42"]


def test_allow_failure_hands_the_exception_to_the_dependent(running: Cluster,
                                                            tmp_path: Path) -> None:
    release = tmp_path / "release"
    with running.client() as client:
        dep = client.submit(nest_tasks.fail, str(tmp_path), "dep", str(release))
        tolerant = client.submit(nest_tasks.takes, taskq.allow_failure(dep))
        strict = client.submit(nest_tasks.takes, dep)
        ok = client.submit(nest_tasks.takes, taskq.allow_failure(client.submit(pow, 2, 5)))
        release.touch()
        assert tolerant.result(60) == "exception ValueError: dep failed"
        with pytest.raises(taskq.DependencyFailed):
            strict.result(60)
        assert ok.result(60) == "value 32"
        # a dependency that had failed already: the exception is pickled in place
        assert client.submit(nest_tasks.takes, taskq.allow_failure(dep)).result(60) == \
            "exception ValueError: dep failed"


def test_a_callback_is_made_once_across_a_master_sigkill(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    release = tmp_path / "release"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    failing = taskq.task(nest_tasks.fail,
                         on_failure=functools.partial(nest_tasks.on_failure, str(tmp_path)))
    stall = sqlite3.connect(journal, timeout=5, isolation_level=None)
    try:
        with cluster.client() as client:
            future = client.submit(failing, str(tmp_path), "doomed", str(release))
            wait_for(lambda: nest_tasks.marks(str(tmp_path), "doomed"), 60, "it to start")
            stall.execute("BEGIN IMMEDIATE")  # the master's commits wait from now on
            release.touch()
            with pytest.raises(ValueError):
                future.result(60)  # ended and delivered, not journaled
            wait_for(lambda: sum(cluster.status()["pending"].values()) == 1, 30,
                     "the callback to be queued")
            assert nest_tasks.marks(str(tmp_path), "failure") == [], \
                "a callback ran before the journal had it"
        [[journaled]] = stall.execute("SELECT COUNT(*) FROM results").fetchall()
        assert journaled == 0
        master.signal_group(signal.SIGKILL)
        master.wait(30)
    finally:
        stall.close()
    cluster.start_master("--state", str(journal), port=port)
    wait_for(lambda: nest_tasks.marks(str(tmp_path), "failure"), 60,
             "the callback to run after the restart")
    wait_for(lambda: (s := cluster.status())["leased"] == 0 and not sum(s["pending"].values()),
             30, "the master to settle")
    with cluster.client() as client:  # one more round trip through the worker
        assert client.submit(pow, 3, 2).result(60) == 9
    assert nest_tasks.marks(str(tmp_path), "failure") == [
        f"{future.task_id} ValueError: doomed failed"]
    assert len(nest_tasks.marks(str(tmp_path), "doomed")) == 1
