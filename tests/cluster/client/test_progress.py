"""Progress from inside a task and ``taskq.current_task()``: seen by the client, by
`taskq status --job` and `taskq results --wait`, on each pool; coalesced (a task reporting
100,000 times reaches the master a bounded number of times); and the errors."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cancel_tasks
import pytest
from cluster import Cluster, wait_for

import taskq
from taskq.protocol.progress import Progress
from taskq.worker import report
from taskq.worker.pools.progress_slot import ProgressSlot

pytestmark = pytest.mark.timeout(180)


@contextmanager
def _released(*paths: Path) -> Iterator[None]:
    try:
        yield
    finally:
        for path in paths:
            path.touch()


def _status_job(cluster: Cluster, job: str) -> dict:  # type: ignore[type-arg]
    out = cluster.cli("status", "--job", job, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _public_ids(cluster: Cluster) -> dict[str, int]:
    return {w["worker_id"]: w["pid"] for w in cluster.status()["workers"]}


# ---------------------------------------------------------------------- without a cluster


def test_report_progress_outside_a_task_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="outside a task: call it from the code of a task"):
        taskq.report_progress(1, 2)
    assert taskq.current_task().task_id == ""


@pytest.mark.parametrize(("args", "message"), [
    ((-1,), "bad done -1: expected a number >= 0"),
    ((5, 3), "bad total 3: expected a number >= done"),
    ((float("nan"),), "bad done nan: expected a finite number"),
    ((True,), "bad done True: expected a finite number"),
    (("3",), "bad done '3': expected a finite number"),
    ((1, None, 7), "bad message 7: expected a string or None"),
])
def test_bad_progress_values_are_named(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        report.check(*args)


def test_slot_keeps_only_the_last_value_of_the_running_job() -> None:
    slot = ProgressSlot(multiprocessing.get_context("forkserver"))
    slot.current = 4
    for i in range(1, 100_001):
        slot.write("t", Progress(i, 100_000, "é" * 300))
    got = slot.read(4)
    assert got is not None and got[:2] == (100_000, 100_000)
    assert got.message is not None and set(got.message) == {"é"} and len(got.message) <= 200
    assert slot.read(4) is None  # read once per change
    slot.write("t", Progress(1))
    assert slot.read(5) is None  # a value of another job is not this one's
    assert slot.read(4) == Progress(1, None, None)


# ---------------------------------------------------------------------- on a cluster


def test_progress_seen_by_client_status_and_results(running: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with running.client() as client, _released(go):
        future = client.submit(cancel_tasks.progress_then_block, str(go), str(tmp_path / "m"))
        assert future.progress is None or future.progress.done == 3
        wait_for(lambda: future.progress == Progress(3, 10, "parsing"), 30, "progress")
        go.touch()
        assert future.result(60) == "finished"
    go.unlink()
    with _released(go):
        assert running.cli("submit", "cancel_tasks:progress_then_block", str(go),
                           str(tmp_path / "j"), "--job", "p").returncode == 0
        wait_for(lambda: any(r["progress"] == [3, 10, "parsing"]
                             for r in _status_job(running, "p")["running"]), 30, "status")
        text = running.cli("status", "--job", "p")
        assert "3/10 (30%) parsing" in text.stdout and text.returncode == 0
        err = tmp_path / "results.err"
        with err.open("w") as err_file:
            collector = subprocess.Popen(
                [sys.executable, "-m", "taskq", "results", "p", "--wait", "--timeout", "60"],
                env={**running.env, "TASKQ_ADDRESS": running.address}, text=True,
                stdout=subprocess.PIPE, stderr=err_file, cwd=tmp_path)
        try:
            wait_for(lambda: "3/10 (30%) parsing" in err.read_text(), 30, "results --wait")
            go.touch()
            out, _ = collector.communicate(timeout=60)
        finally:
            collector.kill()
        assert collector.returncode == 0 and "finished" in out
    assert running.cli("status", "--job", "nope").returncode == 1


def test_progress_is_coalesced(running: Cluster, tmp_path: Path) -> None:
    """100,000 reports reach the master about once a heartbeat, and the last one wins."""
    go = tmp_path / "go"
    with _released(go):
        began = time.monotonic()
        assert running.cli("submit", "cancel_tasks:report_many", "100000", str(go),
                           str(tmp_path / "m"), "--job", "many").returncode == 0

        def last() -> dict | None:  # type: ignore[type-arg]
            rows = _status_job(running, "many")["running"]
            return rows[0] if rows and rows[0]["progress"] == [100000, 100000, None] else None

        row = wait_for(last, 60, "the last progress")
        elapsed = time.monotonic() - began
        assert isinstance(row, dict)
        assert 1 <= row["updates"] <= elapsed / 1.0 + 2, (row["updates"], elapsed)


def test_progress_and_context_on_thread_and_asyncio_pools(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker("--pool", "threads", "--queues", "t")
    cluster.start_worker("--pool", "asyncio", "--queues", "a")
    cluster.wait_workers(2)
    go = tmp_path / "go"
    ids = _public_ids(cluster)
    with cluster.client() as client, _released(go):
        on_thread = client.submit(taskq.task(cancel_tasks.progress_then_block, queue="t"),
                                  str(go), str(tmp_path / "t"))
        on_loop = client.submit(taskq.task(cancel_tasks.async_progress_then_block, queue="a"),
                                str(go), str(tmp_path / "a"))
        for future in (on_thread, on_loop):
            wait_for(lambda f=future: f.progress == Progress(3, 10, "parsing"), 30, "progress")
        go.touch()
        assert on_thread.result(60) == on_loop.result(60) == "finished"
        thread_ctx = client.submit(taskq.task(cancel_tasks.context, queue="t"))
        loop_ctx = client.submit(taskq.task(cancel_tasks.async_context, queue="a"))
        for future, queue in ((thread_ctx, "t"), (loop_ctx, "a")):
            task_id, attempt, got_queue, worker = future.result(60)
            assert (task_id, attempt, got_queue) == (future.task_id, 0, queue)
            assert worker in ids


def test_current_task_in_a_pool_process(running: Cluster, tmp_path: Path) -> None:
    ids = _public_ids(running)
    with running.client() as client:
        future = client.submit(cancel_tasks.context)
        task_id, attempt, queue, worker = future.result(60)
        assert (task_id, attempt, queue) == (future.task_id, 0, "default")
        assert worker in ids
        retried = client.submit(taskq.task(cancel_tasks.flaky_context, retries=1),
                                str(tmp_path))
        assert retried.result(60)[:3] == (retried.task_id, 1, "default")
        with pytest.raises(ValueError, match="bad total 1: expected a number >= done"):
            client.submit(cancel_tasks.bad_progress, 2, 1).result(60)


_LOCAL = """
import pathlib, sys, time
import cancel_tasks, taskq
go, marker = sys.argv[1:]
with taskq.Client(procs=1) as client:
    future = client.submit(cancel_tasks.progress_then_block, go, marker)
    end = time.monotonic() + 60
    while future.progress != taskq.Progress(3, 10, "parsing") and time.monotonic() < end:
        time.sleep(0.02)
    print(tuple(future.progress or ()))
    pathlib.Path(go).touch()
    print(future.result(60))
"""


@pytest.mark.slow
def test_progress_with_the_local_client(cluster: Cluster, tmp_path: Path) -> None:
    """``Client()`` with no address: a local master and worker of its own."""
    env = {k: v for k, v in cluster.env.items() if not k.startswith("TASKQ_")}
    with _released(tmp_path / "go"):
        out = subprocess.run([sys.executable, "-c", _LOCAL, str(tmp_path / "go"),
                              str(tmp_path / "m")], capture_output=True, text=True,
                             timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["(3, 10, 'parsing')", "finished"]
