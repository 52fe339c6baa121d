"""`taskq results` takes from the master only what its reader took: a pipe closed early
(`| head -3`) leaves the rest for the next run, and `--peek` takes nothing."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time

import pytest
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(180)


def job_of_done_tasks(cluster: Cluster, job: str, n: int) -> None:
    """n tasks returning 0..n-1, all ended."""
    cluster.start_master()
    cluster.start_worker()
    for i in range(n):
        out = cluster.cli("submit", "tasks_mod:add", str(i), "--job", job)
        assert out.returncode == 0, out.stderr
    wait_for(lambda: cluster.status()["done"] >= n, 60, f"{n} tasks to end")


def read_lines(fd: int, n: int, timeout: float) -> list[str]:
    """Read from a pipe until it held n whole lines (each read takes what is there)."""
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < n:
            assert sel.select(max(0.0, deadline - time.monotonic())), f"only got {data!r}"
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended after {data!r}"
            data += chunk
    return data.decode().splitlines()


def values_of(lines: list[str]) -> list[int]:
    """The values of `TASK<tab>ok<tab>VALUE` lines."""
    return [int(line.split("\t")[2]) for line in lines]


def json_values(cluster: Cluster, *args: str) -> list[int]:
    out = cluster.cli("results", *args, "--json")
    assert out.returncode == 0, out.stderr
    return sorted(json.loads(line)["value"] for line in out.stdout.splitlines())


def test_a_pipe_closed_early_takes_only_the_lines_read(cluster: Cluster) -> None:
    job_of_done_tasks(cluster, "piped", 10)
    proc = cluster.spawn(["results", "piped", "--address", cluster.address],
                         stdout=subprocess.PIPE)
    assert proc.popen.stdout is not None
    read = values_of(read_lines(proc.popen.stdout.fileno(), 3, 60))
    proc.popen.stdout.close()
    assert proc.wait(30) == 1
    (line,) = proc.stderr().splitlines()
    assert line.startswith("taskq: error: could not write the results"), line

    # as a user runs it
    head = subprocess.run(["sh", "-c", f'"{sys.executable}" -m taskq results piped | head -n 3'],
                          env={**cluster.env, "TASKQ_ADDRESS": cluster.address},
                          capture_output=True, text=True, timeout=60, cwd=cluster.tmp)
    assert head.returncode == 0, head.stderr
    read += values_of(head.stdout.splitlines())
    assert len(read) == len(set(read)) == 6

    rest = json_values(cluster, "piped")
    assert sorted(read + rest) == list(range(10))  # each exactly once
    assert json_values(cluster, "piped") == []


def test_peek_takes_nothing(cluster: Cluster) -> None:
    job_of_done_tasks(cluster, "looked", 4)
    assert json_values(cluster, "looked", "--peek") == [0, 1, 2, 3]
    assert json_values(cluster, "looked", "--peek") == [0, 1, 2, 3]
    assert json_values(cluster, "looked") == [0, 1, 2, 3]
    assert json_values(cluster, "looked", "--peek") == []
