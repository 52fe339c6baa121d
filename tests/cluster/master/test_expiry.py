"""Expiry end to end on real clusters: a task not started within ``expires`` of its submit
ends ``taskq.TaskExpired`` and never runs (no worker for it; its worker busy past the
deadline; its deadline passed while the master was SIGKILLed), and one taken in time runs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import soft_tasks
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def test_a_task_no_worker_takes_in_time_expires_without_running(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    runs = str(tmp_path)
    nobody = taskq.task(soft_tasks.clean_up_on_soft, expires=1, queue="nobody")
    with cluster.client() as client:
        submitted = time.monotonic()
        future = client.submit(nobody, runs, "late", 0.1)
        with pytest.raises(taskq.TaskExpired, match="did not start within its expires=1 s"):
            future.result(30)
        assert time.monotonic() - submitted < 20  # the reaper ended it, with no worker
        cluster.start_worker("--queues", "nobody")
        cluster.wait_workers(1)
        on_time = taskq.task(soft_tasks.clean_up_on_soft, expires=60, queue="nobody")
        assert client.submit(on_time, runs, "on-time", 0.1).result(60) == "finished"
    assert soft_tasks.marks(runs, "late") == 0 and soft_tasks.marks(runs, "on-time") == 1
    explained = cluster.cli("explain", future.task_id)
    assert explained.returncode == 0 and "ended expired" in explained.stdout, explained
    history = cluster.cli("history", "--failed", "--json")
    rows = [json.loads(line) for line in history.stdout.splitlines()]
    assert [r["outcome"] for r in rows if r["task_id"] == future.task_id] == ["expired"]


def test_a_task_its_worker_cannot_start_in_time_expires_there(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker("--procs", "1")
    cluster.wait_workers(1)
    runs = str(tmp_path)
    blocker = taskq.task(soft_tasks.clean_up_on_soft)
    expiring = taskq.task(soft_tasks.clean_up_on_soft, expires=2)
    with cluster.client() as client:
        busy = client.submit(blocker, runs, "blocker", 4)
        wait_for(lambda: soft_tasks.marks(runs, "blocker") == 1, 30, "the blocker to run")
        late = client.submit(expiring, runs, "late", 0.1)
        wait_for(lambda: cluster.status()["leased"] == 2, 30, "both to be leased")
        with pytest.raises(taskq.TaskExpired, match="before a worker could start it"):
            late.result(60)
        assert busy.result(60) == "finished"
    assert soft_tasks.marks(runs, "late") == 0


def test_an_expiry_deadline_survives_a_killed_master(cluster: Cluster, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    soon = taskq.task(soft_tasks.clean_up_on_soft, expires=2, queue="later")
    later = taskq.task(soft_tasks.clean_up_on_soft, expires=120, queue="later")
    with cluster.client() as client:
        expired = client.submit(soon, str(runs), "soon", 0.1)
        kept = client.submit(later, str(runs), "kept", 0.1)
        deadline = time.time() + 2
        client.flush(30)  # journaled
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        wait_for(lambda: time.time() > deadline + 0.5, 10, "the deadline to pass")
        cluster.start_master("--state", str(journal), port=port)
        cluster.start_worker("--queues", "later")
        with pytest.raises(taskq.TaskExpired):
            expired.result(60)
        assert kept.result(60) == "finished"
    assert soft_tasks.marks(str(runs), "soon") == 0
    assert soft_tasks.marks(str(runs), "kept") == 1


def test_the_cli_submits_with_expires_and_refuses_bad_limits(cluster: Cluster) -> None:
    cluster.start_master()
    out = cluster.cli("submit", "tasks_mod:add", "1", "2", "--job", "gone", "--queue", "nobody",
                      "--expires", "1s")
    assert out.returncode == 0, out.stderr
    done = cluster.cli("results", "gone", "--wait", "--timeout", "60")
    assert done.returncode == 1 and "expired" in done.stdout + done.stderr, done
    for flags, expected in ((("--expires", "-1"), "bad duration '-1'"),
                            (("--expires", "ten"), "bad duration 'ten'"),
                            (("--expires", "0"), "more than 0 seconds"),
                            (("--soft-timeout", "5", "--timeout", "2"),
                             "soft_timeout must be less than timeout"),
                            (("--soft-timeout", "-1"), "soft_timeout must be a positive")):
        bad = cluster.cli("submit", "tasks_mod:add", "1", *flags)
        assert bad.returncode == 2, (flags, bad.stderr)
        lines = [line for line in bad.stderr.splitlines() if expected in line]
        assert len(lines) == 1, (flags, bad.stderr)


def test_the_runs_of_a_schedule_no_worker_serves_expire_rather_than_pile_up(
        cluster: Cluster) -> None:
    cluster.start_master()
    out = cluster.cli("schedule", "add", "tick", "tasks_mod:add", "1", "2", "--every", "1s",
                      "--expires", "0.5s", "--queue", "nobody")
    assert out.returncode == 0, out.stderr

    def last_outcome() -> str:
        listed = cluster.cli("schedule", "list", "--json")
        return str(json.loads(listed.stdout)[0]["last_outcome"])

    wait_for(lambda: last_outcome() == "expired", 30, "a run to expire")
    assert cluster.status()["pending"].get("nobody", 0) <= 1
    bad = cluster.cli("schedule", "add", "bad", "tasks_mod:add", "--every", "1s",
                      "--expires", "-1")
    assert bad.returncode == 2 and "bad duration '-1'" in bad.stderr, bad.stderr
