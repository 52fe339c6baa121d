"""Soft timeouts end to end on real workers of every pool: ``taskq.SoftTimeout`` is raised
inside the running task, which may catch it and return; one left uncaught is the task's
error; one ignored still meets the hard timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soft_tasks
from cluster import Cluster

import taskq

pytestmark = pytest.mark.timeout(120)

POOLS = {"processes": "p", "threads": "t", "asyncio": "a"}


@pytest.fixture
def pools(cluster: Cluster) -> Cluster:
    """A master and one worker of each pool, each on a queue of its own."""
    cluster.start_master()
    for pool, queue in POOLS.items():
        cluster.spawn(["worker", "--connect", cluster.address, "--pool", pool,
                       "--concurrency", "2", "--queues", queue])
    cluster.wait_workers(len(POOLS))
    return cluster


def test_a_task_catches_its_soft_timeout_and_returns_on_every_pool(
        pools: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    with pools.client() as client:
        started = time.monotonic()
        futures = {}
        for pool, queue in POOLS.items():
            limits = {"soft_timeout": 0.5, "timeout": 30, "queue": queue}
            futures[pool] = client.submit(taskq.task(soft_tasks.clean_up_on_soft, **limits),
                                          runs, pool)
        # on the main thread of a pool process, one long blocking sleep is interrupted
        futures["one sleep"] = client.submit(taskq.task(
            soft_tasks.clean_up_on_soft, soft_timeout=0.5, timeout=30, queue="p"),
            runs, "one-sleep", 30, 30)
        futures["coroutine"] = client.submit(taskq.task(
            soft_tasks.aclean_up_on_soft, soft_timeout=0.5, timeout=30, queue="a"),
            runs, "coroutine")
        futures["coroutine, threads"] = client.submit(taskq.task(
            soft_tasks.aclean_up_on_soft, soft_timeout=0.5, timeout=30, queue="t"),
            runs, "coroutine-t")
        assert {name: f.result(60) for name, f in futures.items()} == dict.fromkeys(
            futures, "cleaned")
        assert time.monotonic() - started < 25  # none ran its 30 s
    for name in (*POOLS, "one-sleep", "coroutine", "coroutine-t"):
        assert soft_tasks.marks(runs, name, "cleaned") == 1, name


def test_an_uncaught_soft_timeout_is_the_tasks_error(pools: Cluster, tmp_path: Path) -> None:
    with pools.client() as client:
        started = time.monotonic()
        for queue in POOLS.values():
            soft = taskq.task(soft_tasks.work, soft_timeout=0.3, timeout=30, queue=queue)
            with pytest.raises(taskq.SoftTimeout, match="soft_timeout"):
                client.submit(soft, 20).result(60)
        assert time.monotonic() - started < 20  # none worked its 20 s


def test_a_task_that_ignores_its_soft_timeout_meets_the_hard_one(
        pools: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    with pools.client() as client:
        futures = {queue: client.submit(taskq.task(
            soft_tasks.ignore_soft, soft_timeout=0.3, timeout=1.5, queue=queue),
            runs, queue, 8) for queue in ("p", "t")}
        for future in futures.values():
            with pytest.raises(taskq.TaskTimeout):
                future.result(60)
    for queue in futures:
        assert soft_tasks.marks(runs, queue, "ignored") == 1, queue


def test_a_soft_timeout_lands_in_no_other_task(pools: Cluster, tmp_path: Path) -> None:
    """A task that returns before its soft timeout leaves nothing behind: the next tasks on
    the same thread or process run their whole course."""
    runs = str(tmp_path)
    with pools.client() as client:
        for queue in ("p", "t"):
            quick = taskq.task(soft_tasks.clean_up_on_soft, soft_timeout=1.0, queue=queue)
            plain = taskq.task(soft_tasks.clean_up_on_soft, queue=queue)
            firsts = [client.submit(quick, runs, f"quick-{queue}", 0.1) for _ in range(4)]
            thens = [client.submit(plain, runs, f"plain-{queue}", 1.5) for _ in range(4)]
            assert [f.result(60) for f in firsts + thens] == ["finished"] * 8
