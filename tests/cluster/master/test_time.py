"""Time, end to end on real clusters: retries by failure kind with backoff, and delayed
tasks, from the API and the CLI, across a killed master."""

from __future__ import annotations

import itertools
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def test_retries_follow_the_failure_kind_and_wait_their_backoff(
        running: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    flaky = taskq.task(tasks_mod.fail_first, retries=3, retry_on=(IOError,), backoff=0.3,
                       jitter=False)
    with running.client() as client:
        assert client.submit(flaky, runs, "io", 2).result(60) == "io"
        with pytest.raises(ValueError, match="run 1"):  # not an IOError: not retried
            client.submit(flaky, runs, "value", 2, "ValueError").result(60)
        with pytest.raises(OSError, match="run 4"):  # the last attempt's outcome
            client.submit(flaky, runs, "always", 9).result(60)
    assert tasks_mod.runs_of(runs, "io") == 3
    assert tasks_mod.runs_of(runs, "value") == 1
    assert tasks_mod.runs_of(runs, "always") == 4
    starts = tasks_mod.run_times(runs, "always")
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert [g >= wait for g, wait in zip(gaps, (0.3, 0.6, 1.2), strict=True)] == [True] * 3


def test_a_timeout_is_retried_only_when_named(running: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    named = taskq.task(tasks_mod.fail_first, timeout=0.5, retries=2,
                       retry_on=(taskq.TaskTimeout,))
    unnamed = taskq.task(tasks_mod.fail_first, timeout=0.5, retries=2)
    with running.client() as client:
        assert client.submit(named, runs, "named", 1, "sleep", 5).result(60) == "named"
        with pytest.raises(taskq.TaskTimeout):
            client.submit(unnamed, runs, "unnamed", 1, "sleep", 5).result(60)
    assert tasks_mod.runs_of(runs, "named") == 2
    assert tasks_mod.runs_of(runs, "unnamed") == 1


def test_a_delayed_task_starts_at_its_time_and_can_be_cancelled(
        running: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    with running.client() as client:
        submitted = time.monotonic()
        later = client.submit_after(1.0, tasks_mod.mark_run, runs, "later")
        when = datetime.now(UTC) + timedelta(seconds=1)
        at = client.submit_at(when, tasks_mod.mark_run, runs, "at")
        never = client.submit_after(60, tasks_mod.mark_run, runs, "never")
        assert later.result(60) == "later" and at.result(60) == "at"
        status = running.status()
        assert status["waiting"] == 1 and status["leased"] == 0  # it holds no worker slot
        assert never.cancel()
        with pytest.raises(ValueError, match="timezone-aware"):
            client.submit_at(datetime.now(), tasks_mod.add, 1)
        with pytest.raises(ValueError, match="0 or more seconds"):
            client.submit_after(-1, tasks_mod.add, 1)
    assert tasks_mod.run_times(runs, "later")[0] >= submitted + 1.0
    assert tasks_mod.runs_of(runs, "never") == 0


def test_waiting_tasks_survive_a_killed_master(cluster: Cluster, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    cluster.wait_workers(1)
    retried = taskq.task(tasks_mod.fail_first, retries=1, backoff=3.0, jitter=False)
    with cluster.client() as client:
        delayed = client.submit_after(3.0, tasks_mod.mark_run, str(runs), "delayed")
        retry = client.submit(retried, str(runs), "retry", 1)
        wait_for(lambda: tasks_mod.runs_of(str(runs), "retry") == 1, 30, "the first attempt")
        wait_for(lambda: cluster.status()["waiting"] == 2, 30, "both to wait")
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        cluster.start_master("--state", str(journal), port=port)
        assert delayed.result(60) == "delayed" and retry.result(60) == "retry"
    first, second = tasks_mod.run_times(str(runs), "retry")
    assert second - first >= 3.0  # the backoff was kept across the restart
    assert tasks_mod.runs_of(str(runs), "delayed") == 1


def test_the_cli_submits_delayed_tasks_and_refuses_bad_times(running: Cluster) -> None:
    # 5 s: long enough that `taskq status` answers first even on a loaded machine
    out = running.cli("submit", "tasks_mod:add", "1", "2", "--job", "later", "--in", "5s")
    assert out.returncode == 0, out.stderr
    assert running.status()["waiting"] == 1
    done = running.cli("results", "later", "--wait", "--timeout", "60")
    assert done.returncode == 0 and "\t3" in done.stdout, done.stderr
    for flag, value, expected in (("--in", "ten", "bad duration 'ten'"),
                                  ("--in", "-5", "bad duration '-5'"),
                                  ("--at", "2026-12-01T02:00", "timezone-aware"),
                                  ("--at", "tomorrow", "bad time 'tomorrow'")):
        bad = running.cli("submit", "tasks_mod:add", "1", flag, value)
        assert bad.returncode == 2, (flag, value, bad.stderr)
        (line,) = bad.stderr.strip().splitlines()
        assert expected in line, line
