"""A worker finds the user's task modules as ``python -m`` would: in the directory it was
started from, and in each ``--path``, in its pool processes as in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster import Cluster

pytestmark = pytest.mark.timeout(120)


def write_module(where: Path, name: str) -> None:
    where.mkdir(exist_ok=True)
    (where / f"{name}.py").write_text("def double(x):\n    return 2 * x\n")


def run_by_name(cluster: Cluster, target: str, job: str) -> list[dict[str, object]]:
    """Submit ``target(21)`` from the command line and collect the job's results."""
    out = cluster.cli("submit", target, "21", "--job", job)
    assert out.returncode == 0, out.stderr
    out = cluster.cli("results", job, "--wait", "--timeout", "60", "--json")
    assert out.returncode == 0, (out.stdout, out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines()]


def start_worker(cluster: Cluster, cwd: Path, *extra: str) -> None:
    # as the ``taskq`` command starts it: no directory of the user's on sys.path
    env = {**cluster.env, "PYTHONSAFEPATH": "1"}
    cluster.spawn(["worker", "--connect", cluster.address, "--procs", "1", *extra],
                  env=env, cwd=cwd)
    cluster.wait_workers(1)


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_tasks_import_from_the_workers_working_directory(cluster: Cluster, pool: str) -> None:
    project = cluster.tmp / "project"
    write_module(project, "firsthour_cwd")
    cluster.start_master()
    start_worker(cluster, project, "--pool", pool)
    (result,) = run_by_name(cluster, "firsthour_cwd:double", "cwd")
    assert (result["status"], result["value"], result["error"]) == ("ok", 42, "")


def test_tasks_import_from_each_path_given(cluster: Cluster) -> None:
    write_module(cluster.tmp / "lib_a", "firsthour_a")
    write_module(cluster.tmp / "lib_b", "firsthour_b")
    elsewhere = cluster.tmp / "elsewhere"
    elsewhere.mkdir()
    cluster.start_master()
    # relative to where the worker starts
    start_worker(cluster, elsewhere, "--path", "../lib_a", "--path", str(cluster.tmp / "lib_b"))
    for name in ("firsthour_a", "firsthour_b"):
        (result,) = run_by_name(cluster, f"{name}:double", name)
        assert (result["status"], result["value"], result["error"]) == ("ok", 42, "")


def test_a_path_that_is_not_a_directory_is_a_usage_error(cluster: Cluster) -> None:
    out = cluster.cli("worker", "--connect", "127.0.0.1:1", "--path", "no-such-dir")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert "--path" in line and "no-such-dir" in line
