"""A task one worker cannot import runs on another that can: two real workers, started
as a user would in two directories, only one of which holds the module of tasks; and a
task that no connected worker can import fails saying so, in its result and in
``taskq explain``."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from cluster import Cluster, Proc

import taskq

pytestmark = pytest.mark.timeout(120)


def write_module(where: Path, name: str) -> None:
    where.mkdir(exist_ok=True)
    (where / f"{name}.py").write_text(
        "import time\n\n\ndef double(x):\n    time.sleep(0.05)\n    return 2 * x\n")


def start_worker(cluster: Cluster, cwd: Path) -> Proc:
    """A worker as ``taskq worker`` run in ``cwd`` starts it: it imports from there only."""
    env = {**cluster.env, "PYTHONSAFEPATH": "1"}  # no test directory on its sys.path
    return cluster.spawn(["worker", "--connect", cluster.address, "--procs", "1"],
                         env=env, cwd=cwd)


@pytest.fixture
def module_here(cluster: Cluster) -> Iterator[ModuleType]:
    """The module of tasks, importable in the project directory and by the submitter."""
    project = cluster.tmp / "project"
    write_module(project, "unloadable_tasks")
    sys.path.insert(0, str(project))
    try:
        yield importlib.import_module("unloadable_tasks")
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("unloadable_tasks", None)


def attempts_of(cluster: Cluster) -> list[dict[str, object]]:
    """Every attempt of every task in the master's history."""
    out = cluster.cli("history", "--json")
    assert out.returncode == 0, out.stderr
    return [a for line in out.stdout.splitlines() for a in json.loads(line)["attempts"]]


def test_tasks_a_worker_cannot_import_run_on_the_one_that_can(
        cluster: Cluster, module_here: ModuleType) -> None:
    elsewhere = cluster.tmp / "elsewhere"
    elsewhere.mkdir()
    cluster.start_master()
    unable = start_worker(cluster, elsewhere)
    start_worker(cluster, cluster.tmp / "project")
    cluster.wait_workers(2)

    with cluster.client() as client:
        futures = [client.submit(module_here.double, i) for i in range(8)]
        assert [f.result(60) for f in futures] == [2 * i for i in range(8)]

    status = cluster.status()
    assert (status["done"], status["failed"]) == (8, 0)
    attempts = attempts_of(cluster)
    refused = [a for a in attempts if a["outcome"] == "unloadable"]
    ran = [a for a in attempts if a["outcome"] == "ok"]
    assert len(ran) == 8
    assert refused, "the worker that cannot import was handed none of the tasks"
    for attempt in refused:  # each said why, and none used a retry or ran twice
        assert f"-{unable.pid}-" in str(attempt["worker"])
        assert "could not import unloadable_tasks: No module named 'unloadable_tasks'" in \
            str(attempt["detail"])
    assert all(f"-{unable.pid}-" not in str(a["worker"]) for a in ran)


def test_a_task_no_connected_worker_can_import_fails_saying_why(
        cluster: Cluster, module_here: ModuleType) -> None:
    elsewhere = cluster.tmp / "elsewhere"
    elsewhere.mkdir()
    cluster.start_master()
    unable = start_worker(cluster, elsewhere)
    cluster.wait_workers(1)

    with cluster.client() as client:
        future = client.submit(module_here.double, 21)
        with pytest.raises(taskq.TaskLoadError) as info:
            future.result(60)
    message = str(info.value)
    assert "no worker serving queue 'default' could load the task (1 worker tried: " in message
    assert f"-{unable.pid}-" in message
    assert "could not import unloadable_tasks: No module named 'unloadable_tasks'" in message

    # by name from the command line too, and taskq explain says why
    out = cluster.cli("submit", "unloadable_tasks:double", "21", "--job", "byname")
    assert out.returncode == 0, out.stderr
    out = cluster.cli("results", "byname", "--wait", "--timeout", "60", "--json")
    (result,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert result["status"] == "unloadable"
    assert "No module named 'unloadable_tasks'" in result["error"]
    out = cluster.cli("explain", str(result["task_id"]))
    assert out.returncode == 0, out.stderr
    assert "ended unloadable" in out.stdout
    assert "could not import unloadable_tasks: No module named 'unloadable_tasks'" in out.stdout
