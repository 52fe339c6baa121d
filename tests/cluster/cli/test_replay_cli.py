"""`taskq failed` and `taskq replay` as users run them, against a real master and worker.

A task that fails for good is listed with its function and error, survives a master SIGKILL
(its dead letter is journaled), and `taskq replay` runs it again as a new task, linked both
ways in `taskq inspect`, that succeeds once its cause is fixed (a flag file). Bad input is
one line and a non-zero exit; the master keeps serving.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(180)


def _failed(cluster: Cluster, *args: str) -> list[dict]:  # type: ignore[type-arg]
    out = cluster.cli("failed", "--json", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _submit(cluster: Cluster, *args: str) -> str:
    out = cluster.cli("submit", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]  # "job NAME task ID"


def _ok(cluster: Cluster, *args: str) -> str:
    out = cluster.cli(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
def test_a_failed_task_survives_a_master_sigkill_and_replays(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    cluster.wait_workers(1)
    task_id = _submit(cluster, "replay_tasks:needs_flag", str(flag), "21", "--job", "first",
                      "--retries", "1")
    wait_for(lambda: _failed(cluster), 60, "the task to fail for good")
    [row] = _failed(cluster)
    assert row["task_id"] == task_id and row["queue"] == "default"
    assert row["function"] == "replay_tasks:needs_flag"
    assert row["error_type"] == "FileNotFoundError" and "is missing" in row["detail"]
    assert row["replayed_as"] == []

    master.signal_group(signal.SIGKILL)
    master.wait(30)
    cluster.start_master("--state", str(journal), port=port)

    assert [r["task_id"] for r in _failed(cluster)] == [task_id]
    table = _ok(cluster, "failed")
    assert task_id in table and "replay_tasks:needs_flag" in table
    assert "FileNotFoundError" in table
    flag.touch()  # the fix is in
    out = _ok(cluster, "replay", task_id, "--job", "again")
    new_id = out.split()[3]
    assert out.splitlines()[0] == f"{task_id} replayed as {new_id}" and new_id != task_id
    assert "taskq results again" in out
    results = _ok(cluster, "results", "again", "--wait", "--json")
    [result] = [json.loads(line) for line in results.splitlines()]
    assert (result["task_id"], result["status"], result["value"]) == (new_id, "ok", 42)
    assert f"replayed as {new_id}" in _ok(cluster, "inspect", task_id)
    assert f"replay of {task_id}" in _ok(cluster, "inspect", new_id)
    inspected = json.loads(_ok(cluster, "inspect", task_id, "--json"))
    assert inspected["replayed_as"] == [new_id]
    assert json.loads(_ok(cluster, "inspect", new_id, "--json"))["replay_of"] == task_id
    [row] = _failed(cluster)  # the original is still listed, with its replay
    assert row["replayed_as"] == [new_id]


def test_bad_replays_are_one_line_and_a_non_zero_exit(cluster: Cluster,
                                                      tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker()
    cluster.wait_workers(1)
    flag = tmp_path / "flag"
    failing = _submit(cluster, "replay_tasks:needs_flag", str(flag), "1", "--job", "j")
    wait_for(lambda: _failed(cluster), 60, "the task to fail")
    flag.touch()
    good = _submit(cluster, "replay_tasks:needs_flag", str(flag), "2", "--job", "j")
    wait_for(lambda: "ok" in _ok(cluster, "inspect", good), 60, "the good task to end")
    waiting = _submit(cluster, "tasks_mod:add", "1", "--job", "k", "--in", "1h")

    for task_id, says in (
            (f"{failing}x", f"no failed task {failing}x on the master (see `taskq failed`)"),
            (good, f"task {good} succeeded: nothing to replay"),
            (waiting, f"task {waiting} has not failed: it is waiting")):
        out = cluster.cli("replay", task_id)
        assert (out.returncode, out.stdout) == (1, "")
        assert out.stderr == f"taskq: error: {says}\n"
    usage = cluster.cli("replay")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    both = cluster.cli("replay", failing, "--failed")
    assert both.returncode == 2 and "not both" in both.stderr
    bad_since = cluster.cli("failed", "--since", "soon")
    assert bad_since.returncode == 2 and len(bad_since.stderr.splitlines()) == 1

    # the master still serves, and --failed replays what was not replayed yet
    out = _ok(cluster, "replay", "--failed", "--job", "fixed")
    assert out.startswith(f"{failing} replayed as ")
    results = _ok(cluster, "results", "fixed", "--wait", "--json")
    assert [json.loads(line)["value"] for line in results.splitlines()] == [2]
    assert _ok(cluster, "replay", "--failed") == "no failed task to replay\n"


def test_a_call_past_the_history_retention_cannot_be_replayed(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    cluster.start_master("--history", "1s")
    cluster.start_worker()
    cluster.wait_workers(1)
    task_id = _submit(cluster, "replay_tasks:needs_flag", str(tmp_path / "flag"), "1",
                      "--job", "gone")
    ended = cluster.cli("results", "gone", "--wait", "--json")  # once it has failed
    assert json.loads(ended.stdout)["status"] == "error", ended.stderr
    wait_for(lambda: not _failed(cluster), 30, "its call to expire")

    out = cluster.cli("replay", task_id)

    assert out.returncode == 1
    assert out.stderr.startswith(f"taskq: error: task {task_id} failed, but its call was "
                                 f"dropped when the history retention")
    assert len(out.stderr.splitlines()) == 1
