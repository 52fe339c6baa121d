"""Shared primitives on real clusters: a lock around a shared file, a holder killed mid-hold,
a consumer killed mid-item, a master killed with a dict and a queue, and bad input."""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster import ROOT, Cluster, wait_for

import taskq
from taskq.errors import SerializationError

HERE = ROOT / "tests"


def helper(cluster: Cluster, *args: str) -> subprocess.Popen[bytes]:
    """A helper process (tests/prim_tasks.py) in its own session, killed by the test."""
    return subprocess.Popen([sys.executable, str(HERE / "prim_tasks.py"), *args],
                            env=cluster.env, start_new_session=True, cwd=cluster.tmp,
                            stderr=subprocess.DEVNULL)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.timeout(90)
def test_tasks_on_two_workers_lose_no_update_under_the_lock(running: Cluster,
                                                           tmp_path: Path) -> None:
    from prim_tasks import bump_file_under_lock

    shared = tmp_path / "count"
    shared.write_text("0")
    with running.client() as client:
        fs = [client.submit(bump_file_under_lock, str(shared), 5) for _ in range(8)]
        pids = {f.result(timeout=60) for f in fs}
        assert len(pids) >= 2, "both workers ran tasks"
        assert shared.read_text() == "40"
        row = next(r for r in client.primitives() if r.name == "file-lock")
        assert (row.kind, row.holders, row.waiters) == ("lock", 0, 0)


@pytest.mark.timeout(60)
def test_a_holder_killed_mid_hold_loses_the_lock_within_its_lease(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    cluster.start_master()
    ready = tmp_path / "ready"
    holder = helper(cluster, "hold_forever", cluster.address, cluster.authkey, str(ready), "2")
    try:
        wait_for(ready.exists, 20, "the holder to take the lock")
        with cluster.client() as client:
            lock = client.lock("held", lease=2)
            assert not lock.acquire(timeout=2.5), "a living holder keeps its lock past a lease"
            waiter: list[float] = []

            def wait_for_it() -> None:
                if lock.acquire(timeout=20):
                    waiter.append(time.monotonic())

            thread = threading.Thread(target=wait_for_it)
            thread.start()
            killed = time.monotonic()
            kill(holder)
            thread.join(25)
            assert waiter, "the waiter never got the lock"
            assert waiter[0] - killed <= 2 + 1.0  # the lease, plus a renewal's slack
            lock.release()
            with pytest.raises(RuntimeError, match="does not hold"):
                lock.release()
    finally:
        kill(holder)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_consumer_killed_mid_item_loses_no_item(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    flag = tmp_path / "hung"
    with cluster.client() as client:
        jobs = client.queue("jobs", lease=2)
        for i in range(40):
            jobs.put(i)
        a = helper(cluster, "consume", cluster.address, cluster.authkey, "hang", str(flag))
        b = None
        try:
            hung = int(wait_for(lambda: flag.exists() and flag.read_text(), 30,
                                "a consumer to stop mid-item"))  # type: ignore[arg-type]
            b = helper(cluster, "consume", cluster.address, cluster.authkey, "-", str(flag))
            kill(a)
            assert jobs.join(timeout=60), "every item acknowledged"
            done = client.dict("done")
            assert sorted(int(k) for k in done) == list(range(40))
            assert 40 <= client.counter("processed").value <= 41
            assert hung == 0 and done[str(hung)] == b.pid
            assert b.wait(30) == 0
        finally:
            kill(a)
            if b is not None:
                kill(b)


@pytest.mark.timeout(90)
def test_a_master_killed_keeps_dicts_queues_counters_holders_and_waiters(
        cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "master.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    client = cluster.client(reconnect_for=30)
    try:
        settings = client.dict("settings")
        settings.update({"a": 1, "b": [2, 3], "c": {"d": None}})
        jobs = client.queue("jobs")
        for i in range(5):
            jobs.put(f"item-{i}")
        taken = jobs.get()
        client.counter("n").add(41)
        client.event("go").set()
        lock = client.lock("l", lease=30)
        assert lock.acquire()
        master.signal_group(signal.SIGKILL)
        master.wait(10)
        cluster.start_master("--state", str(journal), port=port)
        assert dict(settings) == {"a": 1, "b": [2, 3], "c": {"d": None}}
        assert jobs.qsize() == 4 and jobs.unfinished() == 5
        taken.done()
        assert [jobs.get().value for _ in range(4)] == [f"item-{i}" for i in range(1, 5)]
        assert client.counter("n").add(1) == 42
        assert client.event("go").is_set()
        rows = {(r.name, r.kind): r for r in client.primitives()}
        assert rows[("l", "lock")].holders == 1
        assert not client.lock("l").acquire(timeout=0.2)
        lock.release()  # the restored holder is still this one
    finally:
        client.shutdown()


@pytest.mark.timeout(60)
def test_bad_input_is_named_at_the_call_and_the_master_keeps_serving(
        cluster: Cluster) -> None:
    cluster.start_master()
    with cluster.client() as client:
        for bad in ("", "x" * 201, 7):
            with pytest.raises(ValueError, match="bad name"):
                client.lock(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="bad semaphore value 0"):
            client.semaphore("s", 0)
        client.semaphore("s", 2)
        with pytest.raises(ValueError, match="exists with value 2, not 3"):
            client.semaphore("s", 3)
        with pytest.raises(ValueError, match="bad lease"):
            client.lock("l", lease=0)
        d = client.dict("d")
        with pytest.raises(SerializationError, match=r"dict 'd' key 'k'.*RLock"):
            d["k"] = threading.RLock()
        assert isinstance(SerializationError("x"), pickle.PicklingError)
        with pytest.raises(ValueError, match="bad key"):
            d[""] = 1
        with pytest.raises(RuntimeError, match="does not hold"):
            client.lock("l").release()
        q = client.queue("q", maxsize=1)
        q.put(1)
        started = time.monotonic()
        with pytest.raises(queue.Full, match="'q' is full \\(maxsize 1\\)"):
            q.put(2, timeout=0.3)
        assert time.monotonic() - started >= 0.3
        with pytest.raises(queue.Empty):
            client.queue("empty").get(timeout=0.1)
        with pytest.raises(ValueError, match="task_done"):
            q.task_done()
        with pytest.raises(RuntimeError, match="only inside a task"):
            taskq.current_client()
        assert client.counter("c").add(2) == 2  # still serving
    out = cluster.cli("primitives", "delete", "")
    assert out.returncode == 2 and "bad name" in out.stderr
    out = cluster.cli("primitives", "delete", "nope")
    assert out.returncode == 1 and "no shared primitive named 'nope'" in out.stderr
    out = cluster.cli("primitives", "--json")
    assert out.returncode == 0, out.stderr
    assert {(r["name"], r["kind"]) for r in json.loads(out.stdout)} >= {("s", "semaphore"),
                                                                      ("q", "queue")}
    out = cluster.cli("primitives", "delete", "q")
    assert out.returncode == 0 and "deleted queue 'q'" in out.stdout


@pytest.mark.timeout(60)
def test_waiters_are_served_first_come_first_served(cluster: Cluster) -> None:
    cluster.start_master()
    with cluster.client() as client:
        first = client.lock("fifo")
        assert first.acquire()
        order: list[int] = []
        threads = []
        for i in range(4):
            lock = client.lock("fifo")

            def take(i: int = i, lock: taskq.client.prims.Lock = lock) -> None:
                assert lock.acquire(timeout=20)
                order.append(i)
                lock.release()

            threads.append(threading.Thread(target=take))
            threads[-1].start()
            wait_for(lambda n=i + 1: next(r.waiters for r in client.primitives()
                                          if r.name == "fifo") == n, 10, f"{i + 1} waiters")
        first.release()
        for thread in threads:
            thread.join(25)
        assert order == [0, 1, 2, 3]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_waiters_keep_their_places_across_a_master_kill(cluster: Cluster,
                                                        tmp_path: Path) -> None:
    journal = tmp_path / "master.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    client = cluster.client(reconnect_for=30)
    try:
        holder = client.lock("line")
        assert holder.acquire()
        order: list[str] = []

        def line_up(who: str) -> None:
            lock = client.lock("line")
            if lock.acquire(timeout=40):
                order.append(who)
                lock.release()

        def waiters() -> int:
            return next((r.waiters for r in client.primitives() if r.name == "line"), -1)

        threads = []
        for n, who in enumerate(("first", "second", "third"), 1):
            threads.append(threading.Thread(target=line_up, args=(who,)))
            threads[-1].start()
            wait_for(lambda n=n: waiters() == n, 10, f"{who} in line")
        master.signal_group(signal.SIGKILL)
        master.wait(10)
        cluster.start_master("--state", str(journal), port=port)
        assert waiters() == 3
        holder.release()
        for thread in threads:
            thread.join(45)
        assert order == ["first", "second", "third"]
    finally:
        client.shutdown()
