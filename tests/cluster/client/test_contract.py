"""The executor contract at its edges, against real masters and workers: callables run with
the state they had at submit, running() and cancel() tell the truth, shutdown(wait=False)
lets tasks finish, the client keeps no reference to what it is done with, an error inside the
master reaches the futures (and ``taskq submit``: see test_bad_input), and nothing runs again
once its result reached the client."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq
from taskq.errors import MasterError
from taskq.master.broker import Broker
from taskq.master.owned import Owned
from taskq.master.state import BrokerState
from taskq.net import managers
from taskq.net.keys import KeyRing

pytestmark = pytest.mark.timeout(120)


class Counter:
    def __init__(self) -> None:
        self.n = 1

    def __call__(self, x: int) -> int:
        return self.n + x

    def plus(self, x: int) -> int:
        return self.n + x


def test_a_callable_runs_with_the_state_it_had_at_submit(running: Cluster) -> None:
    box = [1]
    counter = Counter()

    def closure(x: int) -> int:
        return box[0] + x

    part = functools.partial(tasks_mod.add, b=1)
    with running.client() as client:
        before = [client.submit(f, 1).result(30) for f in (closure, counter, counter.plus)]
        before.append(client.submit(part, 1).result(30))
        box[0], counter.n = 100, 100
        part.keywords["b"] = 100
        after = [client.submit(f, 1).result(30) for f in (closure, counter, counter.plus)]
        after.append(client.submit(part, 1).result(30))
        mapped = list(client.map(closure, [1, 2], chunksize=2))
    assert before == [2, 2, 2, 2]
    assert after == [101, 101, 101, 101]
    assert mapped == [101, 102]


def test_running_is_true_while_the_task_runs_and_then_cancel_is_refused(
        running: Cluster) -> None:
    with running.client() as client:
        future = client.submit(tasks_mod.sleep_then, 1.5, "slept")
        assert not future.running()
        wait_for(future.running, 30, "the future to show running")
        assert not future.done()
        assert future.cancel() is False
        assert future.result(30) == "slept"
        assert not future.running() and not future.cancelled()


def test_cancel_succeeds_for_tasks_a_worker_took_but_did_not_begin(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker(procs=1)
    cluster.wait_workers(1)
    runs = str(tmp_path)
    release = tmp_path / "release"
    with cluster.client() as client:
        first = client.submit(tasks_mod.hold_until, str(release))  # runs until released
        wait_for(first.running, 30, "the first task to run")
        later = [client.submit(tasks_mod.mark_run, runs, f"later{i}") for i in range(3)]
        # the worker takes tasks ahead of its single process: they wait there, unstarted
        wait_for(lambda: cluster.status()["leased"] >= 2, 30, "a task taken ahead")
        assert all(f.cancel() for f in later)
        assert all(f.cancelled() for f in later)
        with pytest.raises(cf.CancelledError):
            later[0].result(0)
        done, _ = cf.wait(later, timeout=5)
        assert set(done) == set(later)
        release.touch()
        assert first.result(30) == str(release)
        assert client.submit(tasks_mod.mark_run, runs, "after").result(30) == "after"
    assert [tasks_mod.runs_of(runs, f"later{i}") for i in range(3)] == [0, 0, 0]


def test_shutdown_without_wait_lets_submitted_tasks_finish(running: Cluster) -> None:
    client = running.client()
    futures = [client.submit(tasks_mod.sleep_then, 0.5, i) for i in range(4)]
    client.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="after shutdown"):
        client.submit(tasks_mod.add, 1, 1)
    assert [f.result(30) for f in futures] == [0, 1, 2, 3]


def test_submit_after_a_finished_shutdown_is_a_runtime_error(running: Cluster) -> None:
    client = running.client()
    client.shutdown(wait=True)  # its link is closed too: still the executor's RuntimeError
    with pytest.raises(RuntimeError, match="after shutdown"):
        client.submit(tasks_mod.add, 1, 1)


def test_shutdown_cancel_futures_cancels_only_what_has_not_begun(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker(procs=1)
    cluster.wait_workers(1)
    runs = str(tmp_path)
    release = tmp_path / "release"
    client = cluster.client()
    first = client.submit(tasks_mod.hold_until, str(release))  # runs until released
    wait_for(first.running, 30, "the first task to run")
    rest = [client.submit(tasks_mod.mark_run, runs, f"rest{i}") for i in range(5)]

    def release_once_cancelled() -> None:  # shutdown(wait=True) waits for the first task
        wait_for(lambda: all(f.cancelled() for f in rest), 30, "the rest to be cancelled")
        release.touch()

    releaser = threading.Thread(target=release_once_cancelled)
    releaser.start()
    try:
        client.shutdown(wait=True, cancel_futures=True)
    finally:
        release.touch()
        releaser.join(35)
    assert first.result(0) == str(release)
    assert all(f.cancelled() for f in rest)
    assert sum(tasks_mod.runs_of(runs, f"rest{i}") for i in range(5)) == 0


class Payload:
    """An argument, a callable and a result the client must not keep alive."""

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def __call__(self, other: Payload) -> Payload:
        return Payload(self.n + other.n)


def test_the_client_keeps_nothing_of_a_task_that_ended(running: Cluster) -> None:
    with running.client() as client:
        fn, arg = Payload(1), Payload(2)
        refs = [weakref.ref(fn), weakref.ref(arg)]
        future = client.submit(fn, arg)
        result = future.result(30)
        assert result.n == 3
        refs.append(weakref.ref(result))
        del fn, arg, result, future
        gc.collect()
        assert [r() for r in refs] == [None, None, None]
        assert client.submit(tasks_mod.add, 1, 1).result(30) == 2  # still works


@pytest.mark.parametrize("chunksize", [1, 2])
def test_map_keeps_no_result_it_yielded(running: Cluster, chunksize: int) -> None:
    with running.client() as client:
        results = client.map(Payload(10), [Payload(i) for i in range(4)], chunksize=chunksize)
        first = next(results)
        assert first.n == 10
        gone = weakref.ref(first)
        del first
        gc.collect()
        assert gone() is None  # the iterator let it go once it was yielded
        assert [r.n for r in results] == [11, 12, 13]


def serve_in_process(broker: Broker, key: bytes) -> tuple[Any, str]:
    server = managers.serve(Owned(broker), "127.0.0.1", 0, KeyRing([key]))
    managers.run_server(server)
    host, port = server.address[:2]
    return server, f"{host}:{port}"


class BrokenFetch(Broker):
    def fetch(self, outbox: str, ack: list[str], max_n: int, wait: float) -> Any:
        raise RuntimeError("fetch is broken")


def test_an_error_inside_the_master_fails_the_futures_and_nothing_hangs() -> None:
    key = os.urandom(16)
    broker = BrokenFetch(BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20))
    server, address = serve_in_process(broker, key)
    try:
        with taskq.Client(address, key) as client:
            future = client.submit(tasks_mod.add, 1, 1)
            with pytest.raises(MasterError, match="fetch is broken"):
                future.result(30)
            with pytest.raises(taskq.ConnectError):
                client.submit(tasks_mod.add, 1, 1)
    finally:
        managers.stop_server(server)
        broker.close()


PROGRAM = """
import logging, sys, taskq, tasks_mod
{setup}
client = taskq.Client(sys.argv[1], reconnect_for=1.0)
print(client.submit(tasks_mod.add, 1, 1).result(60), flush=True)
sys.stdin.readline()  # the test kills the master now
try:
    client.submit(tasks_mod.add, 2, 2).result(60)
except taskq.ConnectError:
    print("gone", flush=True)
client.shutdown(wait=False)
"""


@pytest.mark.parametrize("setup", ["", "logging.basicConfig(level=logging.ERROR)"])
def test_library_logs_never_reach_stdout(cluster: Cluster, setup: str) -> None:
    master = cluster.start_master()
    cluster.start_worker()
    program = subprocess.Popen(
        [sys.executable, "-c", PROGRAM.format(setup=setup), cluster.address],
        env=cluster.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert program.stdout is not None and program.stdin is not None
        assert program.stdout.readline() == "2\n"
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        out, err = program.communicate("go\n", timeout=60)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
    assert out == "gone\n"
    if setup:
        assert "master_link_lost" not in err  # the program's own configuration decides
    else:
        assert "master_link_lost" in err  # an unconfigured program sees warnings on stderr


def test_nothing_runs_again_once_its_result_reached_the_client(
        cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    runs = tmp_path / "runs"
    runs.mkdir()
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    arrived: dict[str, int] = {}
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.mark_run, str(runs), f"t{i}", 0.01)
                   for i in range(400)]
        for future in futures:
            future.add_done_callback(lambda f: arrived.setdefault(f.result(),
                                                                  time.monotonic_ns()))
        for killed_after in (60, 200):
            wait_for(lambda n=killed_after: sum(f.done() for f in futures) >= n, 60,
                     f"{killed_after} tasks done")
            master.signal_group(signal.SIGKILL)
            master.wait(30)
            master = cluster.start_master("--state", str(journal), port=port)
        assert sorted(f.result(120) for f in futures) == sorted(f"t{i}" for i in range(400))
    late = []
    for entry in os.listdir(runs):
        name, _, started = entry.split(".")
        if int(started) > arrived[name]:
            late.append(name)
    assert late == [], f"ran again after the client had the result: {late}"


def test_a_master_stopping_mid_call_gives_its_clients_no_stray_answer(cluster: Cluster) -> None:
    """A connection the master stops serving is closed, never answered twice (the second
    answer would be read as the reply to the client's next call)."""
    master = cluster.start_master()
    client = cluster.client(reconnect_for=1.0)
    try:
        future = client.submit(tasks_mod.add, 1, 1)  # no worker: it stays queued
        wait_for(lambda: sum(cluster.status()["pending"].values()) == 1, 30, "the task queued")
        master.signal_group(signal.SIGTERM)
        assert master.wait(30) == 0
        with pytest.raises(taskq.ConnectError):
            future.result(60)
    finally:
        client.shutdown(wait=False)


class _HeldSubmits:
    """The client's remote, with each submit held until ``go`` is set (a slow network)."""

    def __init__(self, remote: Any) -> None:
        self._remote = remote
        self.arrived = threading.Event()
        self.go = threading.Event()

    def submit(self, tasks: Any, *, durable: bool = True) -> int:
        self.arrived.set()
        self.go.wait(30)
        return int(self._remote.submit(tasks, durable=durable))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)


def test_a_cancel_while_its_task_is_on_the_way_cancels_it(cluster: Cluster) -> None:
    cluster.start_master()  # no worker: a task the master has stays queued
    client = cluster.client()
    try:
        held = _HeldSubmits(client._remote)
        client._remote = held
        future = client.submit(tasks_mod.add, 1, 2)
        assert held.arrived.wait(30)  # the sender is inside submit: the task is on its way
        threading.Timer(0.2, held.go.set).start()  # it arrives while the cancel waits
        assert future.cancel() is True
        assert future.cancelled()
        open_count = client._remote.open_count(client.outbox)
        assert open_count == 0, open_count  # nothing left on the master to run
    finally:
        held.go.set()
        client.shutdown(wait=False, cancel_futures=True)
