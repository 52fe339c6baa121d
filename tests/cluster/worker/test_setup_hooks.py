"""``taskq worker --setup module:function``: the hook runs once where tasks run, before the
first of them (in each pool process; once for the threads pool; in the asyncio pool's event
loop), and a hook that is named wrongly or raises keeps the worker from starting, with one
line that says why."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(120)

HOOKS = '''
import asyncio, os, pathlib, threading

STATE = None

def init():
    global STATE
    STATE = ("init", os.getpid(), threading.get_ident())
    with open(os.environ["SETUP_LOG"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")

async def init_async():
    global STATE
    STATE = ("init_async", os.getpid(), id(asyncio.get_running_loop()))
    with open(os.environ["SETUP_LOG"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")

def boom():
    raise RuntimeError("the database is down")

def unless_down():
    if os.path.exists(os.environ["SETUP_DOWN"]):
        raise RuntimeError("the database is down")
    init()
'''


def seen() -> tuple[object, int, int]:
    """A task: what the hook left in this process, this process and this thread."""
    import setup_hooks_mod

    return setup_hooks_mod.STATE, os.getpid(), threading.get_ident()


async def seen_async() -> tuple[object, int]:
    import setup_hooks_mod

    await asyncio.sleep(0)
    return setup_hooks_mod.STATE, id(asyncio.get_running_loop())


def project(cluster: Cluster) -> tuple[Path, dict[str, str]]:
    where = cluster.tmp / "project"
    where.mkdir(exist_ok=True)
    (where / "setup_hooks_mod.py").write_text(HOOKS)
    return where, {**cluster.env, "SETUP_LOG": str(cluster.tmp / "setup.log"),
                   "SETUP_DOWN": str(cluster.tmp / "down")}


def start_worker(cluster: Cluster, *extra: str) -> None:
    where, env = project(cluster)
    cluster.spawn(["worker", "--connect", cluster.address, *extra], env=env, cwd=where)
    cluster.wait_workers(1)


def setup_pids(cluster: Cluster) -> list[int]:
    return [int(line) for line in (cluster.tmp / "setup.log").read_text().split()]


def test_the_hook_runs_once_in_each_pool_process_before_its_first_task(
        cluster: Cluster) -> None:
    cluster.start_master()
    start_worker(cluster, "--procs", "2", "--setup", "setup_hooks_mod:init")
    with cluster.client() as client:
        results = [f.result(60) for f in [client.submit(seen) for _ in range(20)]]
    hooked = setup_pids(cluster)
    assert len(hooked) == len(set(hooked)) == 2  # once in each of the two pool processes
    for state, pid, _ in results:
        assert state is not None and state[:2] == ("init", pid)  # set in that process
        assert pid in hooked


def test_a_process_that_replaces_one_runs_the_hook_and_one_that_fails_it_runs_nothing(
        cluster: Cluster) -> None:
    cluster.start_master()
    start_worker(cluster, "--procs", "1", "--max-tasks-per-child", "1",
                 "--setup", "setup_hooks_mod:unless_down")
    with cluster.client() as client:
        first = [client.submit(seen).result(60)]
        # the process that replaced the first one ran the hook before the database goes down
        wait_for(lambda: len(setup_pids(cluster)) >= 2, 30, "the second process's hook")
        (cluster.tmp / "down").touch()  # from now on the hook fails
        first.append(client.submit(seen).result(60))  # run by that second process
        assert len(set(setup_pids(cluster))) >= 2  # each process, new after each task, ran it
        assert {state[1] for state, _, _ in first} == {pid for _, pid, _ in first}
        waiting = client.submit(seen)  # no process can run it now
        worker = cluster.procs[-1]
        wait_for(lambda: "taskq pool process setup failed" in worker.stderr(), 30,
                 "the failed setup logged")
        assert not waiting.done()  # it is not blamed: it waits for a process that can run it
        (cluster.tmp / "down").unlink()
        state, pid, _ = waiting.result(60)
    assert state[:2] == ("init", pid)
    assert "the database is down" in worker.stderr()


def test_the_threads_pool_runs_the_hook_once(cluster: Cluster) -> None:
    cluster.start_master()
    start_worker(cluster, "--pool", "threads", "--concurrency", "4",
                 "--setup", "setup_hooks_mod:init")
    with cluster.client() as client:
        results = [f.result(60) for f in [client.submit(seen) for _ in range(12)]]
    (worker_pid,) = setup_pids(cluster)
    assert {pid for _, pid, _ in results} == {worker_pid}
    assert {state for state, _, _ in results} == {results[0][0]}
    assert results[0][0][:2] == ("init", worker_pid)


def test_the_asyncio_pool_awaits_an_async_hook_in_its_event_loop(cluster: Cluster) -> None:
    cluster.start_master()
    start_worker(cluster, "--pool", "asyncio", "--setup", "setup_hooks_mod:init_async")
    with cluster.client() as client:
        results = [f.result(60) for f in [client.submit(seen_async) for _ in range(6)]]
    assert len(setup_pids(cluster)) == 1
    for state, loop_id in results:
        assert state is not None and state[0] == "init_async"
        assert state[2] == loop_id  # the very loop the tasks run on


@pytest.mark.parametrize(("spec", "says"), [
    ("nocolon", "expected MODULE:FUNCTION"),
    ("no_such_module_here:init", "could not import no_such_module_here"),
    ("setup_hooks_mod:missing", "setup_hooks_mod has no function missing"),
])
def test_a_bad_spec_is_one_line_at_start(cluster: Cluster, spec: str, says: str) -> None:
    where, env = project(cluster)
    proc = cluster.spawn(["worker", "--connect", "127.0.0.1:1", "--setup", spec], env=env,
                         cwd=where)
    assert proc.wait(60) == 1
    (line,) = proc.stderr().splitlines()
    assert spec in line and says in line, line


@pytest.mark.parametrize("pool", ["processes", "threads", "asyncio"])
def test_a_hook_that_raises_keeps_the_worker_from_starting(cluster: Cluster,
                                                           pool: str) -> None:
    cluster.start_master()
    where, env = project(cluster)
    proc = cluster.spawn(["worker", "--connect", cluster.address, "--pool", pool,
                          "--setup", "setup_hooks_mod:boom"], env=env, cwd=where)
    assert proc.wait(60) == 1
    (line,) = proc.stderr().splitlines()
    assert line == ("taskq: error: setup hook setup_hooks_mod:boom raised RuntimeError: "
                    "the database is down"), line
    assert cluster.status()["workers"] == []  # it never joined
