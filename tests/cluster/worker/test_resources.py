"""Resources on a real cluster: a task is leased only where its needs are free, holds them
while it runs, sees its units; one no worker could fit is reported."""

from __future__ import annotations

from pathlib import Path

import pool_tasks
import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(150)


@pytest.mark.slow
def test_two_gpus_run_at_most_two_gpu_tasks_with_distinct_devices(cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    cluster.start_master()
    gpu_worker = cluster.start_worker("--resources", "gpu=2", procs=4)
    cluster.start_worker(procs=2)  # no GPU: never given a GPU task
    cluster.wait_workers(2)
    gpu_task = taskq.task(pool_tasks.gpu_span, resources={"gpu": 1})
    with cluster.client() as client:
        futures = [client.submit(gpu_task, str(tmp_path), f"g{i}", 0.4) for i in range(8)]
        plain = [client.submit(tasks_mod.add, i, 1) for i in range(20)]
        results = [f.result(90) for f in futures]
        assert [f.result(60) for f in plain] == list(range(1, 21))
    intervals = tasks_mod.spans(str(tmp_path), "g")
    assert len(intervals) == 8 and tasks_mod.most_at_once(intervals) == 2
    for env, units, group in results:
        assert isinstance(units, list) and len(units) == 1 and units[0] in (0, 1)
        assert env == str(units[0])  # CUDA_VISIBLE_DEVICES names the unit it holds
        assert group == gpu_worker.pid  # run by the worker with GPUs only
    assert {u[0] for _, u, _ in results} == {0, 1}
    rows = {w["resources"]: w for w in cluster.status()["workers"]}
    assert rows["gpu=2"]["done"] >= 8 and rows[""]["pool"] == "processes"


def test_a_task_no_worker_can_fit_is_reported(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker("--resources", "gpu=2")
    cluster.wait_workers(1)
    greedy = taskq.task(tasks_mod.add, resources={"gpu": 4})
    with cluster.client() as client:
        future = client.submit(greedy, 1, 2)
        wait_for(lambda: cluster.status()["unfit"] == {"gpu=4": 1}, 30, "the unfit report")
        shown = cluster.cli("status")
        assert "need gpu=4: no connected worker has that much" in " ".join(
            shown.stdout.split()), shown.stdout
        cluster.start_worker("--resources", "gpu=4,ram_gb=8")
        assert future.result(60) == 3
    assert cluster.status()["unfit"] == {}


def test_current_task_on_threads_and_asyncio(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.spawn(["worker", "--connect", cluster.address, "--pool", "asyncio",
                   "--resources", "gpu=1"])
    cluster.wait_workers(1)
    gpu_task = taskq.task(pool_tasks.gpu_span, resources={"gpu": 1})
    with cluster.client() as client:
        env, units, _ = client.submit(gpu_task, str(tmp_path), "a", 0).result(60)
    assert units == [0] and env is None  # no process of its own: the env is left alone


@pytest.mark.parametrize("args,needle", [
    (["--resources", "gpu"], "bad resources 'gpu'"),
    (["--resources", "gpu=-1"], "bad resources 'gpu=-1'"),
])
def test_bad_resources_are_one_line(cluster: Cluster, args: list[str], needle: str) -> None:
    out = cluster.cli("worker", "--connect", "127.0.0.1:1", *args)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert needle in line, line


def test_bad_task_resources_raise_at_once() -> None:
    with pytest.raises(ValueError, match="bad amount -1 of resource 'gpu'"):
        taskq.task(tasks_mod.add, resources={"gpu": -1})


def test_needs_survive_a_killed_master(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()  # no GPU
    cluster.wait_workers(1)
    gpu_task = taskq.task(pool_tasks.gpu_span, resources={"gpu": 1})
    with cluster.client() as client:
        future = client.submit(gpu_task, str(tmp_path), "k", 0)
        wait_for(lambda: cluster.status()["unfit"] == {"gpu=1": 1}, 30, "the unfit report")
        master.kill_all()
        cluster.start_master("--state", str(journal), port=port)
        wait_for(lambda: cluster.status()["unfit"] == {"gpu=1": 1}, 30,
                 "the restored task's needs to be reported again")
        gpu_worker = cluster.start_worker("--resources", "gpu=1")
        _, units, group = future.result(60)
    assert units == [0] and group == gpu_worker.pid
