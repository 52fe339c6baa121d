"""Thread and asyncio worker pools on real clusters: concurrency, timeouts, a blocked loop,
cancels, graceful drain, and async def tasks on every pool."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pool_tasks
import pytest
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def _worker(cluster: Cluster, pool: str, concurrency: int, *extra: str) -> None:
    cluster.spawn(["worker", "--connect", cluster.address, "--pool", pool, "--concurrency",
                   str(concurrency), "--log-level", "debug", *extra])
    cluster.wait_workers(1)


@pytest.mark.slow
def test_a_thousand_sleeping_coroutines_run_at_once(cluster: Cluster) -> None:
    cluster.start_master()
    _worker(cluster, "asyncio", 1000)
    with cluster.client() as client:
        start = time.monotonic()
        futures = [client.submit(pool_tasks.async_sleep, 1.0, i) for i in range(1000)]
        assert [f.result(60) for f in futures] == list(range(1000))
        elapsed = time.monotonic() - start
    assert elapsed < 10, f"1,000 one-second sleeps took {elapsed:.1f} s on one asyncio worker"
    row = cluster.status()["workers"][0]
    assert (row["pool"], row["procs"]) == ("asyncio", 1000)


@pytest.mark.slow
def test_fifty_blocking_tasks_run_at_once_on_threads(cluster: Cluster) -> None:
    cluster.start_master()
    _worker(cluster, "threads", 50)
    with cluster.client() as client:
        start = time.monotonic()
        futures = [client.submit(pool_tasks.blocking_sleep, 0.5, i) for i in range(50)]
        assert [f.result(60) for f in futures] == list(range(50))
        elapsed = time.monotonic() - start
    assert elapsed < 5, f"50 blocking half-second tasks took {elapsed:.1f} s on 50 threads"


def test_where_each_kind_of_task_runs(cluster: Cluster) -> None:
    """async def on processes and threads: on a loop of its own; a plain function on an
    asyncio worker: in the loop's executor, not on the loop."""
    cluster.start_master()
    for pool, queue in (("processes", "p"), ("threads", "t"), ("asyncio", "a")):
        cluster.spawn(["worker", "--connect", cluster.address, "--pool", pool,
                       "--concurrency", "2", "--queues", queue])
    cluster.wait_workers(3)
    with cluster.client() as client:
        def run(fn: object, queue: str) -> tuple[int, str, bool]:
            return client.submit(taskq.task(fn, queue=queue)).result(60)  # type: ignore[arg-type]
        worker_pids = {w["pid"]: w["pool"] for w in cluster.status()["workers"]}
        pid, _, in_loop = run(pool_tasks.async_where, "p")
        assert in_loop and pid not in worker_pids  # a pool process, on its own loop
        pid, thread, in_loop = run(pool_tasks.async_where, "t")
        assert in_loop and worker_pids[pid] == "threads" and thread == "taskq-pool-thread"
        pid, thread, in_loop = run(pool_tasks.where, "t")
        assert not in_loop and worker_pids[pid] == "threads"
        pid, thread, in_loop = run(pool_tasks.async_where, "a")
        assert in_loop and worker_pids[pid] == "asyncio" and thread == "taskq-loop"
        pid, thread, in_loop = run(pool_tasks.where, "a")
        assert not in_loop and thread.startswith("taskq-executor")


def test_a_thread_that_times_out_fails_at_once_and_keeps_its_slot(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    cluster.start_master()
    _worker(cluster, "threads", 2)
    marker = tmp_path / "returned"
    slow = taskq.task(pool_tasks.sleep_then_mark, timeout=0.5)
    with cluster.client() as client:
        start = time.monotonic()
        future = client.submit(slow, 4, str(marker))
        with pytest.raises(taskq.TaskTimeout, match="a thread cannot be stopped"):
            future.result(60)
        assert time.monotonic() - start < 3.5
        assert not marker.exists()
        wait_for(lambda: cluster.status()["workers"][0]["busy"] == 1, 10,
                 "the timed-out thread's slot to count busy")
        assert client.submit(pool_tasks.blocking_sleep, 0, "next").result(30) == "next"
        wait_for(marker.exists, 30, "the timed-out thread to return")
        wait_for(lambda: cluster.status()["workers"][0]["busy"] == 0, 10, "the slot freed")
    shown = cluster.cli("status")
    assert "keeps its slot busy" in " ".join(shown.stdout.split()), shown.stdout


def test_a_coroutine_that_times_out_is_cancelled(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    _worker(cluster, "asyncio", 10)
    marker = tmp_path / "cancelled"
    slow = taskq.task(pool_tasks.cancel_noted, timeout=0.5)
    with cluster.client() as client:
        with pytest.raises(taskq.TaskTimeout, match="coroutine was cancelled"):
            client.submit(slow, str(marker), 30).result(60)
        assert marker.read_text() == "cancelled"
        wait_for(lambda: cluster.status()["workers"][0]["busy"] == 0, 10, "the slot freed")


def test_a_task_blocking_the_loop_is_named_and_heartbeats_flow(cluster: Cluster) -> None:
    cluster.start_master()  # --lost-after 2: a worker silent for 2 s would lose its tasks
    proc = cluster.spawn(["worker", "--connect", cluster.address, "--pool", "asyncio",
                          "--log-level", "info"])
    cluster.wait_workers(1)
    with cluster.client() as client:
        future = client.submit(pool_tasks.async_block, 4)
        wait_for(future.running, 30, "the blocking task to start")
        seen = []
        while not future.done():
            seen.append(cluster.status()["workers"][0]["seen_ago"])
        assert future.result(30) == "blocked"
        assert max(seen) < 1.9, seen
        task_id = future.task_id
    wait_for(lambda: "task_blocks_loop" in proc.stderr(), 10, "the blocked loop to be logged")
    line = next(x for x in proc.stderr().splitlines() if "task_blocks_loop" in x)
    assert task_id in line, line


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
def test_cancel_before_start_and_graceful_drain(cluster: Cluster, pool: str) -> None:
    cluster.start_master()
    proc = cluster.spawn(["worker", "--connect", cluster.address, "--pool", pool,
                          "--concurrency", "1", "--grace", "30"])
    cluster.wait_workers(1)
    fn = pool_tasks.async_sleep if pool == "asyncio" else pool_tasks.blocking_sleep
    with cluster.client() as client:
        first = client.submit(fn, 1.5, "first")
        queued = client.submit(fn, 0, "never")
        wait_for(first.running, 30, "the first task to start")
        assert queued.cancel() and queued.cancelled()
        proc.signal_group(signal.SIGTERM)
        assert first.result(60) == "first"
        assert proc.wait(30) == 0
    assert "task_dropped" in proc.stderr() or "cancel" in proc.stderr().lower()


@pytest.mark.parametrize("args,needle", [
    (["--pool", "fibres"], "unknown pool 'fibres': expected one of processes, threads, asyncio"),
    (["--concurrency", "0"], "'--concurrency'"),
])
def test_bad_pool_options_are_one_line(cluster: Cluster, args: list[str], needle: str) -> None:
    out = cluster.cli("worker", "--connect", "127.0.0.1:1", *args)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert needle in line, line
