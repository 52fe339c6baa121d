"""Nothing lost, nothing stuck: real processes killed, stopped and restarted."""

from __future__ import annotations

import concurrent.futures as cf
import signal
import threading
import time
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(180)


def _count_outcomes(futures: list[taskq.TaskFuture]) -> dict[int, int]:
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def seen(i: int) -> None:
        with lock:
            counts[i] = counts.get(i, 0) + 1

    for i, future in enumerate(futures):
        future.add_done_callback(lambda _f, i=i: seen(i))
    return counts


def test_worker_group_killed_mid_run_loses_nothing(running: Cluster) -> None:
    victim = running.procs[1]
    with running.client() as client:
        futures = [client.submit(tasks_mod.sleep_then, 0.01, i) for i in range(500)]
        counts = _count_outcomes(futures)
        wait_for(lambda: sum(f.done() for f in futures) >= 100, 60, "100 tasks done")
        victim.signal_group(signal.SIGKILL)
        assert [f.result(90) for f in futures] == list(range(500))
    assert counts == {i: 1 for i in range(500)}
    wait_for(lambda: len(running.status()["workers"]) == 1, 30, "the dead worker to be dropped")


def test_crashed_pool_process_fails_only_its_task(running: Cluster) -> None:
    with running.client() as client:
        with pytest.raises(taskq.TaskCrashed, match="exited with code 1"):
            client.submit(tasks_mod.exit_now, 1).result(60)
        with pytest.raises(taskq.TaskCrashed, match="SIGKILL"):
            client.submit(tasks_mod.kill_self).result(60)
        assert client.submit(tasks_mod.add, 1, 2).result(60) == 3
        assert len({client.submit(tasks_mod.pid).result(60) for _ in range(4)}) >= 1


def test_timeout_kills_and_replaces_the_process(running: Cluster) -> None:
    slow = taskq.task(tasks_mod.sleep_then, timeout=1.0)
    with running.client() as client:
        start = time.monotonic()
        future = client.submit(slow, 30, "never")
        with pytest.raises(taskq.TaskTimeout, match="timeout"):
            future.result(60)
        elapsed = time.monotonic() - start
        assert 1.0 <= elapsed < 4.0, elapsed
        assert client.submit(tasks_mod.add, 2, 2).result(60) == 4


def test_task_decorator_options_and_retries(running: Cluster, tmp_path: Path) -> None:
    @taskq.task(retries=2)
    def flaky(marker: str) -> str:
        return tasks_mod.flaky(marker, 2)

    marker = tmp_path / "calls"
    with running.client() as client:
        assert client.submit(flaky, str(marker)).result(60) == "ok after 2 failures"
        # kwargs named like options are the function's own
        assert client.submit(tasks_mod.echo, timeout=5, retries=1).result(60) == (
            (), {"timeout": 5, "retries": 1})
        no_retry = tmp_path / "once"
        with pytest.raises(RuntimeError, match="failure 1"):
            client.submit(tasks_mod.flaky, str(no_retry), 1).result(60)


def test_lost_worker_cap_fails_with_worker_lost(cluster: Cluster) -> None:
    cluster.start_master("--max-attempts", "2")
    with cluster.client() as client:
        future = client.submit(tasks_mod.sleep_then, 60, "x")
        for attempt in range(2):
            worker = cluster.start_worker()

            def holds(pid: int = worker.pid) -> bool:
                return any(w["pid"] == pid and w["held"] == 1
                           for w in cluster.status()["workers"])

            wait_for(holds, 60, f"lease {attempt + 1} by the new worker")
            worker.signal_group(signal.SIGKILL)
            worker.wait(30)
        with pytest.raises(taskq.WorkerLost, match="2 times"):
            future.result(60)


def test_master_killed_and_restarted_on_same_state(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = cluster.address.rsplit(":", 1)[1]
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.sleep_then, 0.02, i) for i in range(300)]
        counts = _count_outcomes(futures)
        wait_for(lambda: sum(f.done() for f in futures) >= 30, 60, "30 tasks done")
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        cluster.start_master("--state", str(journal), port=int(port))
        assert [f.result(120) for f in futures] == list(range(300))
    assert counts == {i: 1 for i in range(300)}


def test_results_survive_a_master_restart(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    assert cluster.cli("submit", "tasks_mod:add", "1", "2", "--job", "keep").returncode == 0
    wait_for(lambda: cluster.status()["done"] == 1, 60, "the task to finish")
    master.signal_group(signal.SIGTERM)
    assert master.wait(30) == 0
    cluster.start_master("--state", str(journal), port=port)
    out = cluster.cli("results", "keep", "--json")
    assert out.returncode == 0 and '"value": 3' in out.stdout


def test_graceful_worker_stop_loses_nothing(cluster: Cluster) -> None:
    cluster.start_master()
    stays = cluster.start_worker()
    leaving = cluster.start_worker("--grace", "20")
    cluster.wait_workers(2)
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.sleep_then, 0.2, i) for i in range(30)]
        counts = _count_outcomes(futures)
        wait_for(lambda: sum(f.done() for f in futures) >= 4, 60, "4 tasks done")
        leaving.popen.send_signal(signal.SIGTERM)
        assert leaving.wait(30) == 0
        assert [f.result(90) for f in futures] == list(range(30))
    assert counts == {i: 1 for i in range(30)}
    assert "worker_draining" in leaving.stderr()
    assert stays.popen.poll() is None


def test_second_signal_stops_worker_at_once(cluster: Cluster) -> None:
    cluster.start_master()
    worker = cluster.start_worker("--grace", "60")
    cluster.wait_workers(1)
    with cluster.client() as client:
        future = client.submit(tasks_mod.sleep_then, 30, "late")
        wait_for(lambda: cluster.status()["leased"] == 1, 60, "the task to be leased")
        worker.popen.send_signal(signal.SIGTERM)
        wait_for(lambda: "worker_draining" in worker.stderr(), 30, "the worker to drain")
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        # handed back, not lost: it is pending again
        wait_for(lambda: sum(cluster.status()["pending"].values()) == 1, 30, "the task back")
        assert not future.done()
        future.cancel()


def test_master_sigterm_flushes_and_exits_zero(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    for i in range(5):
        assert cluster.cli("submit", "tasks_mod:add", str(i), "--job", "later").returncode == 0
    master.signal_group(signal.SIGTERM)
    assert master.wait(30) == 0
    cluster.start_master("--state", str(journal), port=port)
    status = cluster.status()  # queued, or held back a moment for their holders to claim
    assert sum(status["pending"].values()) + status["waiting"] == 5
    cluster.start_worker()
    out = cluster.cli("results", "later", "--wait", "--json", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"status": "ok"') == 5, out.stdout


def test_cancel_removes_a_pending_task(cluster: Cluster) -> None:
    cluster.start_master()
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.add, i) for i in range(3)]
        wait_for(lambda: sum(cluster.status()["pending"].values()) == 3, 30, "3 pending")
        assert futures[1].cancel()
        assert futures[1].cancelled()
        assert sum(cluster.status()["pending"].values()) == 2
        cluster.start_worker()
        assert futures[0].result(60) == 0 and futures[2].result(60) == 2
        running_future = client.submit(tasks_mod.sleep_then, 5, "r")
        wait_for(lambda: cluster.status()["leased"] == 1, 30, "the task to run")
        assert not running_future.cancel()
        assert running_future.result(60) == "r"
        with pytest.raises(cf.CancelledError):
            futures[1].result(1)


def test_max_tasks_and_memory_per_child(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker("--max-tasks-per-child", "2")
    with cluster.client() as client:
        pids = [client.submit(tasks_mod.pid).result(60) for _ in range(6)]
    assert len(set(pids)) >= 3
    cluster.procs[-1].kill_all()
    cluster.start_worker("--max-memory-per-child", "100")
    with cluster.client() as client:
        first = client.submit(tasks_mod.grow, 10).result(60)
        assert client.submit(tasks_mod.grow, 10).result(60) == first
        big = client.submit(tasks_mod.grow, 200).result(60)
        assert client.submit(tasks_mod.pid).result(60) != big


def test_worker_stops_promptly_when_the_master_went_first(cluster: Cluster) -> None:
    master = cluster.start_master()
    worker = cluster.start_worker()
    cluster.wait_workers(1)
    master.signal_group(signal.SIGTERM)
    assert master.wait(30) == 0
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0  # not the whole 60 s reconnect window
