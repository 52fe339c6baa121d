"""``taskq result TASK_ID`` as a user runs it: the repr or JSON of a kept result, --wait for
one still running, and one line on stderr with a non-zero exit for a failed task and for a
result that cannot be had (not ended, expired, unknown, not JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kept_tasks
import pytest
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


def test_a_kept_result_is_printed_as_its_repr_or_json(running: Cluster) -> None:
    ttl = {"result_ttl": 60}
    with running.client() as client:
        square = client.submit(taskq.task(kept_tasks.square, **ttl), 6)
        pair = client.submit(taskq.task(kept_tasks.pair, **ttl), 2)
        a_set = client.submit(taskq.task(kept_tasks.a_set, **ttl), 3)
        failed = client.submit(taskq.task(kept_tasks.fails, **ttl), "bad\ninput")
        taskq_failed = client.submit(taskq.task(kept_tasks.after, timeout=0.5, **ttl),
                                     "/nonexistent/never", 1)
        for fut in (square, pair, a_set, failed, taskq_failed):
            fut.exception(60)
    out = running.cli("result", square.task_id)
    assert (out.returncode, out.stdout) == (0, "36\n"), out.stderr
    assert running.cli("result", square.task_id, "--json").stdout == "36\n"  # read again
    out = running.cli("result", pair.task_id, "--json")
    assert (out.returncode, json.loads(out.stdout)) == (0, [2, "not json"])
    assert running.cli("result", pair.task_id).stdout == "(2, 'not json')\n"
    one_line_error(running.cli("result", a_set.task_id, "--json"),
                   "not JSON-serialisable", "a set", "drop --json")
    out = running.cli("result", failed.task_id)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == "ValueError: bad input\n"
    out = running.cli("result", taskq_failed.task_id)
    assert out.returncode == 1 and out.stderr.startswith("TaskTimeout: ")


def test_wait_prints_a_result_once_its_task_ends(running: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with running.client() as client:
        fut = client.submit(taskq.task(kept_tasks.after, result_ttl=60), str(gate), 8)
        one_line_error(running.cli("result", fut.task_id), "has not ended yet", "--wait")
        waiting = subprocess.Popen(
            [sys.executable, "-m", "taskq", "result", fut.task_id, "--wait", "--json"],
            env={**running.env, "TASKQ_ADDRESS": running.address}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=running.tmp)
        try:
            wait_for(fut.running, 30, "the task to run")
            assert waiting.poll() is None
            gate.write_text("go")
            stdout, stderr = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.communicate()
        assert (waiting.returncode, stdout) == (0, "8\n"), stderr
        assert fut.result(10) == 8


def test_an_expired_or_unknown_id_is_one_line(running: Cluster) -> None:
    with running.client() as client:
        fut = client.submit(taskq.task(kept_tasks.square, result_ttl=0.5), 2)
        assert fut.result(30) == 4
    # (its submitter is gone, having acknowledged it: only the TTL kept it)

    def expired() -> subprocess.CompletedProcess[str] | None:
        out = running.cli("result", fut.task_id)
        return out if "expired" in out.stderr else None

    out = wait_for(expired, 30, "taskq result to say the result expired")
    assert isinstance(out, subprocess.CompletedProcess)
    one_line_error(out, fut.task_id, "result_ttl")
    one_line_error(running.cli("result", "client-nobody-1"), "knows no task")
    timed = running.cli("result", "client-nobody-1", "--wait", "--timeout", "0.5")
    one_line_error(timed, "knows no task")


def test_a_named_jobs_result_outlives_taskq_results_with_submit_result_ttl(
        running: Cluster) -> None:
    out = running.cli("submit", "kept_tasks:square", "9", "--job", "nine",
                      "--result-ttl", "1m")
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.split()[-1]
    taken = running.cli("results", "nine", "--wait", "--timeout", "60")
    assert taken.returncode == 0 and taken.stdout.split("\t")[-1] == "81\n", taken.stderr
    for _ in range(2):  # taken by `taskq results`, and read by id twice after
        out = running.cli("result", task_id)
        assert (out.returncode, out.stdout) == (0, "81\n"), out.stderr
    bad = running.cli("submit", "kept_tasks:square", "1", "--result-ttl", "soon")
    assert bad.returncode == 2 and "--result-ttl" in bad.stderr
