"""Scaling down without loss, with real processes: a SIGTERM sent to a worker's whole
process group lets its running tasks finish; `taskq worker drain` stops a worker from any
host in the middle of a run with no task lost or run twice; what outlives the grace is
queued again at once, not when its lease would expire."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import tasks_mod
from cluster import Cluster, group_pids, wait_for
from web_helpers import get_json, start_web_master


def _runs(tmp_path: Path) -> list[str]:
    """The names ``tasks_mod.mark_run`` recorded in ``_dir(tmp_path)``, one per run."""
    return [entry.split(".")[0] for entry in os.listdir(_dir(tmp_path))]


def _dir(tmp_path: Path) -> str:
    """Where the tasks record their runs."""
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    return str(runs)


def _worker_row(cluster: Cluster, pid: int) -> dict | None:  # type: ignore[type-arg]
    return next((w for w in cluster.status()["workers"] if w["pid"] == pid), None)


def test_a_sigterm_to_the_workers_group_lets_its_running_tasks_finish(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    worker = cluster.start_worker("--grace", "60", procs=2)
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        running = [client.submit(tasks_mod.mark_then_hold, _dir(tmp_path), f"r{i}",
                                 str(release)) for i in range(2)]
        wait_for(lambda: all(f.running() for f in running), 30, "both tasks to run")
        pool = set(group_pids(worker.pid)) - {worker.pid}
        assert len(pool) >= 3  # the forkserver and two pool processes
        os.killpg(worker.pid, signal.SIGTERM)  # as `kill -TERM -- -PGID` or `tini -g`
        wait_for(lambda: "worker_draining" in worker.stderr(), 30, "the worker to drain")
        assert pool <= set(group_pids(worker.pid))  # no pool process died of it
        queued = client.submit(tasks_mod.add, 1, 1)  # no new task for a stopping worker
        release.touch()
        assert sorted(f.result(60) for f in running) == ["r0", "r1"]
        assert worker.wait(60) == 0
        assert not queued.done() and queued.cancel()
    assert "TaskCrashed" not in worker.stderr() and "task_failed" not in worker.stderr()
    assert sorted(_runs(tmp_path)) == ["r0", "r1"]


def test_tasks_written_ahead_to_a_busy_process_are_handed_back(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    cluster.start_master()
    first = cluster.start_worker("--grace", "60", procs=1)
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        running = client.submit(tasks_mod.mark_then_hold, _dir(tmp_path), "long", str(release))
        wait_for(running.running, 30, "the long task to run")
        queued = [client.submit(tasks_mod.pid)]  # written ahead to the busy process
        wait_for(lambda: _worker_row(cluster, first.pid)["held"] == 2, 30,  # type: ignore[index]
                 "the first worker to hold both tasks")
        first.signal_group(signal.SIGTERM)
        wait_for(lambda: "worker_draining" in first.stderr(), 30, "the worker to drain")
        second = cluster.start_worker()
        # they run elsewhere while the long task still holds the first worker's process
        assert {f.result(30) for f in queued} <= set(group_pids(second.pid))
        assert not running.done()
        release.touch()
        assert running.result(60) == "long"
        assert first.wait(60) == 0


def test_what_outlives_the_grace_is_queued_again_at_once(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    cluster.start_master("--lost-after", "300")  # a lease expiry would come far too late
    first = cluster.start_worker("--grace", "0.5")
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        slow = client.submit(tasks_mod.mark_then_hold, _dir(tmp_path), "slow", str(release))
        wait_for(slow.running, 30, "the task to run")
        cluster.start_worker()
        cluster.wait_workers(2)
        first.signal_group(signal.SIGTERM)
        assert first.wait(30) == 0
        wait_for(lambda: _runs(tmp_path).count("slow") == 2, 30, "the task to run again")
        release.touch()
        assert slow.result(60) == "slow"
    assert "worker_left" in cluster.procs[0].stderr()


def test_a_drained_worker_shows_as_draining_and_exits_0(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    _, url = start_web_master(cluster)
    worker = cluster.start_worker("--grace", "60")
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        running = client.submit(tasks_mod.mark_then_hold, _dir(tmp_path), "held", str(release))
        wait_for(running.running, 30, "the task to run")
        name = cluster.status()["workers"][0]["worker_id"]
        out = cluster.cli("worker", "drain", name)
        assert (out.returncode, out.stdout) == (0, f"worker {name}: draining\n"), out.stderr
        wait_for(lambda: "worker_draining" in worker.stderr(), 30, "the worker to hear it")
        row = _worker_row(cluster, worker.pid)
        assert row is not None and row["draining"] is True
        table = cluster.cli("status").stdout
        assert "draining" in table, table
        monitor = get_json(url.rstrip("/") + "/api/status")
        assert [w["state"] for w in monitor["workers"] if w["worker_id"] == name] == [
            "draining"]
        queued = client.submit(tasks_mod.add, 2, 2)
        release.touch()
        assert running.result(60) == "held"
        assert worker.wait(60) == 0
        assert not queued.done() and queued.cancel()
        again = cluster.cli("worker", "drain", name)
        assert again.returncode == 1 and "no worker" in again.stderr


def test_a_drain_mid_run_loses_nothing_and_runs_nothing_twice(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    cluster.start_master()
    first = cluster.start_worker("--grace", "60", procs=2)
    second = cluster.start_worker("--grace", "60", procs=2)
    cluster.wait_workers(2)
    count = 2000
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.mark_run, _dir(tmp_path), f"t{i}", 0.002)
                   for i in range(count)]
        wait_for(lambda: sum(f.done() for f in futures) >= 300, 120, "300 tasks done")
        target = _worker_row(cluster, first.pid)
        assert target is not None
        out = cluster.cli("worker", "drain", target["worker_id"])
        assert out.returncode == 0, out.stderr
        assert first.wait(120) == 0
        assert not first.stderr().count("task_failed")
        started = time.monotonic()
        results = [f.result(180) for f in futures]
        assert time.monotonic() - started < 180
    assert results == [f"t{i}" for i in range(count)]
    runs = _runs(tmp_path)
    twice = sorted({n for n in runs if runs.count(n) > 1})
    assert twice == [] and len(runs) == count, twice[:20]
    assert second.popen.poll() is None  # the other worker serves on
    assert "worker_drain_asked" in first.stderr()



def test_a_draining_worker_stays_draining_across_a_master_restart(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    worker = cluster.start_worker("--grace", "60")
    cluster.wait_workers(1)
    release = tmp_path / "release"
    with cluster.client() as client:
        running = client.submit(tasks_mod.mark_then_hold, _dir(tmp_path), "held", str(release))
        wait_for(running.running, 30, "the task to run")
        name = cluster.status()["workers"][0]["worker_id"]
        assert cluster.cli("worker", "drain", name).returncode == 0
        wait_for(lambda: "worker_draining" in worker.stderr(), 30, "the worker to hear it")
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        master = cluster.start_master("--state", str(journal), port=port)
        wait_for(lambda: _worker_row(cluster, worker.pid), 30, "the worker to join again")
        row = _worker_row(cluster, worker.pid)
        assert row is not None and row["draining"] is True and row["held"] == 1
        release.touch()
        assert running.result(60) == "held"
        assert worker.wait(60) == 0
    assert _runs(tmp_path) == ["held"]  # it finished where it ran, once


def test_a_program_a_task_starts_stops_on_sigterm_as_usual(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker()
    with cluster.client() as client:
        assert client.submit(tasks_mod.terminate_child).result(60) == -signal.SIGTERM
