"""`taskq submit FN --batch FILE`: a task a line over one connection, or, with a bad line,
nothing at all."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from cluster import Cluster

pytestmark = pytest.mark.timeout(180)

N = 300


def test_a_batch_file_submits_a_task_a_line_quickly(cluster: Cluster) -> None:
    cluster.start_master()
    batch = cluster.tmp / "adds.txt"
    batch.write_text("# a, b\n" + "".join(f"{i} {i * 10}\n\n" for i in range(N)))
    began = time.monotonic()
    out = cluster.cli("submit", "tasks_mod:add", "--batch", str(batch), "--job", "adds")
    took = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == N and all(line.startswith("job adds task job:adds-") for line in lines)
    assert took < N * 0.3 / 5, f"{N} tasks took {took:.1f} s"  # not a connection per task
    cluster.start_worker()
    got = cluster.cli("results", "adds", "--wait", "--timeout", "120", "--json", timeout=150)
    assert got.returncode == 0, got.stderr
    values = sorted(int(line.split('"value": ')[1].split(",")[0])
                    for line in got.stdout.splitlines())
    assert values == sorted(i * 11 for i in range(N))


def test_a_batch_from_stdin_splits_each_line_as_a_shell_would(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker()
    env = {**cluster.env, "TASKQ_ADDRESS": cluster.address}
    out = subprocess.run([sys.executable, "-m", "taskq", "submit", "tasks_mod:echo", "--batch",
                          "-", "--job", "words"], input="'two words' 3\n\"x y\"\n", env=env,
                         text=True, capture_output=True, timeout=60, cwd=cluster.tmp)
    assert out.returncode == 0, out.stderr
    got = cluster.cli("results", "words", "--wait", "--timeout", "60")
    assert got.returncode == 0, got.stderr
    shown = sorted(line.split("\t")[2] for line in got.stdout.splitlines())
    assert shown == ["(('two words', 3), {})", "(('x y',), {})"], shown


def test_a_bad_line_is_named_and_nothing_is_submitted(cluster: Cluster) -> None:
    cluster.start_master()
    batch = cluster.tmp / "bad.txt"
    batch.write_text("1 2\n3 4\n5 'unclosed\n7 8\n")
    out = cluster.cli("submit", "tasks_mod:add", "--batch", str(batch), "--job", "bad")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and "line 3" in line, line
    status = cluster.status()
    assert sum(status["pending"].values()) == 0 and status["jobs"] == [], status
