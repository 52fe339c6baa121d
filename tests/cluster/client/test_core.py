"""The core, end to end: a real master and two real workers on loopback."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
import tasks_mod
from cluster import ROOT, Cluster

import taskq

pytestmark = pytest.mark.timeout(120)


def test_lambdas_closures_kwargs_partials(running: Cluster) -> None:
    offset = 41

    def closure(x: int) -> int:
        return x + offset

    with running.client() as client:
        assert client.submit(lambda: "lambda").result(30) == "lambda"
        assert client.submit(closure, 1).result(30) == 42
        assert client.submit(tasks_mod.add, 2, b=3).result(30) == 5
        assert client.submit(functools.partial(tasks_mod.add, b=10), 5).result(30) == 15
        assert client.submit(tasks_mod.echo, 1, x=[2]).result(30) == ((1,), {"x": [2]})


def test_exception_type_and_remote_traceback(running: Cluster) -> None:
    with running.client() as client:
        future = client.submit(tasks_mod.fail, "nope")
        with pytest.raises(KeyError, match="nope") as info:
            future.result(30)
        cause = info.value.__cause__
        assert isinstance(cause, taskq.errors.RemoteTraceback)
        assert "tasks_mod.py" in str(cause) and "in fail" in str(cause)
        with pytest.raises(taskq.RemoteError, match="Unpicklable"):
            client.submit(tasks_mod.raise_unpicklable).result(30)
        # the worker goes on after failures
        assert client.submit(tasks_mod.add, 1, 1).result(30) == 2


def test_map_keeps_order(running: Cluster) -> None:
    with running.client() as client:
        assert list(client.map(tasks_mod.add, range(50), range(50))) == [2 * i for i in range(50)]
        got = list(client.map(lambda x: x * x, range(1000), chunksize=64))
        assert got == [i * i for i in range(1000)]


def test_as_completed_over_hundreds(running: Cluster) -> None:
    with running.client() as client:
        futures = {client.submit(tasks_mod.add, i, 1): i for i in range(500)}
        seen = {futures[f]: f.result() for f in cf.as_completed(futures, timeout=60)}
        assert seen == {i: i + 1 for i in range(500)}
        done, not_done = cf.wait(list(futures), timeout=10)
        assert len(done) == 500 and not not_done


def test_thousand_tasks_resolve_exactly_once(running: Cluster) -> None:
    calls: dict[int, int] = {}
    lock = threading.Lock()

    def count(i: int) -> None:
        with lock:
            calls[i] = calls.get(i, 0) + 1

    with running.client() as client:
        futures = []
        for i in range(1000):
            future = client.submit(tasks_mod.add, i, 0)
            future.add_done_callback(lambda _f, i=i: count(i))
            futures.append(future)
        assert [f.result(60) for f in futures] == list(range(1000))
    assert calls == {i: 1 for i in range(1000)}
    status = running.status()
    assert status["done"] >= 1000 and status["leased"] == 0


def test_two_clients_get_only_their_own_results(running: Cluster) -> None:
    with running.client() as a, running.client() as b:
        fa = [a.submit(tasks_mod.echo, "a", i) for i in range(200)]
        fb = [b.submit(tasks_mod.echo, "b", i) for i in range(200)]
        assert [f.result(60) for f in fa] == [(("a", i), {}) for i in range(200)]
        assert [f.result(60) for f in fb] == [(("b", i), {}) for i in range(200)]


def test_wrong_key_rejected_and_master_keeps_serving(running: Cluster) -> None:
    with pytest.raises(taskq.AuthError, match="authkey rejected"):
        taskq.Client(running.address, "not-the-key")
    env = {**running.env, "TASKQ_AUTHKEY": "not-the-key", "TASKQ_ADDRESS": running.address}
    out = running.cli("status", env=env)
    assert out.returncode == 1
    assert "authkey rejected" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    with running.client() as client:
        assert client.submit(tasks_mod.add, 20, 22).result(30) == 42
    master_log = running.procs[0].stderr()
    assert "connection_rejected" in master_log and running.authkey not in master_log


def test_cli_submit_results_status(running: Cluster) -> None:
    out = running.cli("submit", "tasks_mod:add", "2", "40", "--job", "j1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("job j1 task ")
    out = running.cli("submit", "tasks_mod:echo", "[1, 2]", "hello", "--job", "j1")
    assert out.returncode == 0, out.stderr
    out = running.cli("results", "j1", "--wait", "--json", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    import json

    rows = [json.loads(line) for line in out.stdout.splitlines()]  # one object per result
    values = sorted(repr(r["value"]) for r in rows)
    assert values == sorted([repr(42), repr([[[1, 2], "hello"], {}])])
    assert "0 task(s) still open" in out.stderr
    # fetched results are gone from the master
    again = running.cli("results", "j1", "--json")
    assert again.returncode == 0 and again.stdout == ""
    status = running.status()
    assert len(status["workers"]) == 2
    assert {"host", "pid", "procs", "busy"} <= set(status["workers"][0])
    assert status["done"] >= 2
    table = running.cli("status")
    assert table.returncode == 0 and "workers: 2" in table.stdout


def test_cli_failed_task_and_bad_input(running: Cluster) -> None:
    out = running.cli("submit", "tasks_mod:fail", "boom", "--job", "bad")
    assert out.returncode == 0, out.stderr
    out = running.cli("results", "bad", "--wait", "--timeout", "60")
    assert out.returncode == 1
    assert "KeyError" in out.stdout and "boom" in out.stdout
    out = running.cli("submit", "no_colon_here")
    assert out.returncode == 2 and "MODULE:FUNC" in out.stderr and "Traceback" not in out.stderr
    out = running.cli("status", "--address", "nohost:notaport")
    assert out.returncode == 2 and "HOST:PORT" in out.stderr and "Traceback" not in out.stderr
    out = running.cli("worker", "--connect", "127.0.0.1:1", "--procs", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_local_default_client(tmp_path: Path) -> None:
    code = (
        "import taskq\n"
        "with taskq.Client(procs=2) as c:\n"
        "    print(sorted(c.map(lambda x: x + 1, range(20))) == list(range(1, 21)))\n"
        "    print(c.address[0])\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TASKQ_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=90, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "127.0.0.1"]


def test_module_level_submit_uses_env(running: Cluster, tmp_path: Path) -> None:
    code = ("import taskq\n"
            "print(taskq.submit(pow, 3, 4).result(30), list(taskq.map(abs, [-1, -2])))\n")
    env = {**running.env, "TASKQ_ADDRESS": running.address}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "81 [1, 2]"


@pytest.mark.parametrize("shim,command", [("master.py", "master"), ("worker.py", "worker")])
def test_shims_help(shim: str, command: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / shim), "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "--authkey-file" in out.stdout
    assert ("--connect" in out.stdout) == (command == "worker")


def test_traceback_module_is_usable() -> None:
    # RemoteTraceback text renders through the standard traceback machinery
    exc = KeyError("x")
    exc.__cause__ = taskq.errors.RemoteTraceback("remote lines")
    text = "".join(traceback.format_exception(exc))
    assert "remote lines" in text
