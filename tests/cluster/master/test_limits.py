"""Limits and unique tasks on real clusters: a queue's concurrency and rate, a key's limit
across workers, nothing held up behind them, and unique tasks run once for every submitter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def wide(cluster: Cluster) -> Cluster:
    """A master and two workers of two processes each, taking from default and io."""
    cluster.start_master()
    for _ in range(2):
        cluster.start_worker("--queues", "default,io", procs=2)
    cluster.wait_workers(2)
    return cluster


def test_a_queues_concurrency_holds_across_workers_and_blocks_no_other_queue(
        wide: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    out = wide.cli("queue", "set", "io", "--concurrency", "1")
    assert out.returncode == 0, out.stderr
    io = taskq.task(tasks_mod.span, queue="io")
    with wide.client() as client:
        limited = [client.submit(io, runs, f"io{i}", 0.3) for i in range(4)]
        free = [client.submit(tasks_mod.span, runs, f"free{i}", 0.3) for i in range(4)]
        assert [f.result(60) for f in free] == [f"free{i}" for i in range(4)]
        assert not all(f.done() for f in limited)  # the free ones were not held up
        assert [f.result(60) for f in limited] == [f"io{i}" for i in range(4)]
    assert tasks_mod.most_at_once(tasks_mod.spans(runs, "io")) == 1
    assert tasks_mod.most_at_once(tasks_mod.spans(runs, "free")) >= 2
    listed = json.loads(wide.cli("queue", "list", "--json").stdout)
    assert {"name": "io", "depth": 0, "running": 0, "rate": 0.0, "concurrency": 1,
            "paused": False} in listed


def test_a_key_limit_holds_across_workers(wide: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    with wide.client() as client:
        futures = [client.submit(taskq.task(tasks_mod.span, limit_key=f"tenant-{k}", limit=1),
                                 runs, f"t{k}-{i}", 0.3) for i in range(3) for k in (1, 2)]
        assert all(f.result(60) for f in futures)
    assert tasks_mod.most_at_once(tasks_mod.spans(runs, "t1-")) == 1
    assert tasks_mod.most_at_once(tasks_mod.spans(runs, "t2-")) == 1
    assert tasks_mod.most_at_once(tasks_mod.spans(runs, "t")) == 2  # the keys ran side by side


def test_a_queues_rate_spaces_its_starts(wide: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    assert wide.cli("queue", "set", "io", "--rate", "5/s").returncode == 0
    io = taskq.task(tasks_mod.mark_run, queue="io")
    with wide.client() as client:
        assert all(f.result(60) for f in [client.submit(io, runs, "r") for _ in range(10)])
    starts = tasks_mod.run_times(runs, "r")
    assert starts[-1] - starts[0] >= 0.7  # 5 at once (one second's burst), then 5 a second


def test_unique_tasks_run_once_for_every_submitter(wide: Cluster, tmp_path: Path) -> None:
    runs, release = str(tmp_path), str(tmp_path / "release")
    charge = taskq.task(tasks_mod.mark_then_hold, unique="invoice-7")
    try:
        with wide.client() as one, wide.client() as two:
            first = one.submit(charge, runs, "charge", release)
            wait_for(first.running, 30, "the first charge to run")
            second = two.submit(charge, runs, "charge", release)  # joins the live task
            wait_for(lambda: wide.cli("explain", second.task_id).stdout.count("joined"), 30,
                     "the second submit to join the first")
            (tmp_path / "release").touch()
            assert first.result(60) == second.result(60) == "charge"
            assert tasks_mod.runs_of(runs, "charge") == 1
            assert one.submit(charge, runs, "charge", release).result(60) == "charge"  # ended: runs
    finally:
        (tmp_path / "release").touch()
    assert tasks_mod.runs_of(runs, "charge") == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "ten/s"], "bad rate 'ten/s'"),
    (["--concurrency", "-1"], "greater than or equal to 0"),
    ([], "give --rate or --concurrency"),
])
def test_bad_queue_limits_are_one_line(running: Cluster, args: list[str], message: str) -> None:
    out = running.cli("queue", "set", "io", *args)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert message in line, line


def test_bad_task_limits_are_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="limit_key and limit go together"):
        taskq.task(tasks_mod.add, limit_key="t", limit=0)
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        taskq.task(tasks_mod.add, retries=-1)
    with pytest.raises(ValueError, match="retry_on must be exception types"):
        taskq.task(tasks_mod.add, retry_on=("IOError",))
