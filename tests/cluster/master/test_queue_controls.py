"""Pausing, resuming and purging a queue on a real master, from the command line: a paused
queue accepts tasks and leases none (other queues run on), the pause outlives a master
SIGKILL, a purge cancels what no worker holds, and bad names are one-line errors."""

from __future__ import annotations

import concurrent.futures
import json
import signal
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

ADD_OTHER = taskq.task(tasks_mod.add, queue="other")


def _ok(cluster: Cluster, *args: str) -> str:
    out = cluster.cli(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _queue(cluster: Cluster, name: str) -> dict:  # type: ignore[type-arg]
    rows = json.loads(_ok(cluster, "queue", "list", "--json"))
    return next(r for r in rows if r["name"] == name)


def test_a_paused_queue_holds_its_tasks_across_a_master_kill(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    runs = tmp_path / "runs"
    runs.mkdir()
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker("--queues", "default,other")
    cluster.wait_workers(1)
    assert _ok(cluster, "queue", "pause", "default") == "queue default: paused\n"
    assert _ok(cluster, "queue", "pause", "default") == "queue default: already paused\n"
    with cluster.client() as client:
        held = [client.submit(tasks_mod.mark_run, str(runs), f"held{i}") for i in range(3)]
        # the worker polls: a task of another queue runs while the paused ones wait
        assert client.submit(ADD_OTHER, 1, 2).result(60) == 3
        assert _queue(cluster, "default") == {
            "name": "default", "depth": 3, "running": 0, "rate": 0.0, "concurrency": 0,
            "paused": True}
        assert "\tpaused" in _ok(cluster, "queue", "list")
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        master = cluster.start_master("--state", str(journal), port=port)
        assert _queue(cluster, "default")["paused"] is True
        assert client.submit(ADD_OTHER, 2, 2).result(60) == 4
        assert not any(f.done() for f in held) and not list(runs.iterdir())
        assert _queue(cluster, "default")["depth"] == 3
        assert _ok(cluster, "queue", "resume", "default") == "queue default: resumed\n"
        assert sorted(f.result(60) for f in held) == ["held0", "held1", "held2"]
    assert _ok(cluster, "queue", "resume", "default") == "queue default: was not paused\n"
    assert "\tpaused" not in _ok(cluster, "queue", "list")


def test_a_purge_cancels_the_queued_tasks_and_leaves_the_running_one(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker("--procs", "1")
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        running = client.submit(tasks_mod.mark_then_hold, str(tmp_path), "first", str(release))
        wait_for(running.running, 30, "the first task to start")
        _ok(cluster, "queue", "pause", "default")  # nothing more is leased from now on
        queued = [client.submit(tasks_mod.add, i, 1) for i in range(5)]
        wait_for(lambda: _queue(cluster, "default")["depth"] == 5, 30, "5 tasks queued")
        assert _ok(cluster, "queue", "purge", "default") == "queue default: purged 5 tasks\n"
        for future in queued:
            with pytest.raises(concurrent.futures.CancelledError):
                future.result(30)
        assert not running.done()
        release.touch()
        assert running.result(60) == "first"
        assert _ok(cluster, "queue", "purge", "default") == "queue default: purged 0 tasks\n"
        assert _queue(cluster, "default")["paused"] is True  # a purge keeps the pause


def test_an_empty_queue_name_is_a_usage_error(cluster: Cluster) -> None:
    out = cluster.cli("queue", "purge", "", env={**cluster.env, "TASKQ_ADDRESS": "127.0.0.1:1"})
    assert out.returncode == 2 and "cannot be empty" in out.stderr, out.stderr


@pytest.mark.parametrize("args", [["queue", "pause", "nosuch"], ["queue", "resume", "nosuch"],
                                  ["queue", "purge", "nosuch"], ["worker", "drain", "nobody"]])
def test_unknown_names_are_one_line_errors(cluster: Cluster, args: list[str]) -> None:
    cluster.start_master()
    out = cluster.cli(*args)
    assert out.returncode == 1, (out.stdout, out.stderr)
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and args[-1] in line, line
    assert "Traceback" not in out.stderr
    _ok(cluster, "status")  # the master serves on
