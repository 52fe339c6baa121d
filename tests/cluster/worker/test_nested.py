"""Tasks that submit tasks, on real workers: a parent that waits on its children lends its
slot out meanwhile (a one-process or one-thread worker does not deadlock), a hard cancel
of the parent cancels its children, and ``current_client()`` outside a task says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import nest_tasks
import pytest
from cluster import Cluster, group_pids, wait_for

import taskq

CHILDREN = 10


@pytest.mark.parametrize("pool", [("--procs", "1"), ("--pool", "threads", "--procs", "1")],
                         ids=["procs-1", "threads-1"])
def test_parents_waiting_on_their_children_in_one_slot_get_their_results(
        cluster: Cluster, pool: tuple[str, ...]) -> None:
    cluster.start_master()
    worker = cluster.spawn(["worker", "--connect", cluster.address, *pool])
    with cluster.client() as client:
        assert client.submit(pow, 2, 2).result(60) == 4
        processes = len(group_pids(worker.pid))  # the worker's, its pool's
        assert client.submit(nest_tasks.parent_sum, CHILDREN).result(90) == sum(range(CHILDREN))
        assert client.submit(nest_tasks.parent_map, CHILDREN).result(90) == sum(range(CHILDREN))
        assert client.submit(nest_tasks.grandparent, 5).result(90) == 2 * sum(range(5))
    # the process lent to the children retires once the parent took its slot back
    wait_for(lambda: len(group_pids(worker.pid)) == processes, 30, "the pool to shrink back")


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_hard_cancelling_a_waiting_parent_cancels_its_children(cluster: Cluster,
                                                               tmp_path: Path,
                                                               pool: str) -> None:
    release = tmp_path / "release"
    cluster.start_master()
    cluster.start_worker("--pool", pool, procs=1)
    with cluster.client() as client:
        parent = client.submit(nest_tasks.parent_waits, str(tmp_path), 3, str(release))
        wait_for(lambda: nest_tasks.marks(str(tmp_path), "child0-started"), 60,
                 "a child to run beside its waiting parent")
        children = (tmp_path / "children").read_text().split()
        assert client.cancel(parent, running=True)
        with pytest.raises(taskq.TaskCancelled):
            parent.result(60)

        def outcome(task_id: str) -> str:
            out = cluster.cli("explain", task_id, "--json")
            return str(json.loads(out.stdout).get("facts", {}).get("outcome", "")) \
                if out.returncode == 0 else ""
        wait_for(lambda: all(outcome(c) == "cancelled" for c in children), 60,
                 "every child to end cancelled")
        release.touch()  # a child still running would now end and mark it
        assert client.submit(pow, 2, 3).result(60) == 8  # the worker runs tasks again
    if pool == "processes":  # (a thread cannot be killed: it runs on, its result dropped)
        for i in range(3):
            assert nest_tasks.marks(str(tmp_path), f"child{i}-done") == []


def test_the_tasks_of_one_pool_process_share_its_client(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker(procs=1)
    with cluster.client() as client:
        first = client.submit(nest_tasks.client_of_this_process).result(60)
        second = client.submit(nest_tasks.client_of_this_process).result(60)
        assert first == second and first[1] != client.public_outbox


def test_current_client_outside_a_task_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"only inside a task.*taskq\.Client"):
        taskq.current_client()


def test_a_plain_function_parent_on_a_one_slot_asyncio_pool_gets_its_sum(
        cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker("--pool", "asyncio", procs=1)
    with cluster.client() as client:
        assert client.submit(nest_tasks.parent_sum, CHILDREN).result(90) == sum(range(CHILDREN))
        assert client.submit(nest_tasks.parent_map, CHILDREN).result(90) == sum(range(CHILDREN))
