"""`taskq results` as users run it: results are printed as they arrive and leave the
master only once printed, so a run stopped at any moment loses none."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time

import pytest
from cluster import Cluster, Proc

pytestmark = pytest.mark.timeout(180)


def submit_job(cluster: Cluster, job: str, n: int, seconds: float) -> None:
    """n tasks that each sleep, then return their number."""
    for i in range(n):
        out = cluster.cli("submit", "tasks_mod:sleep_then", str(seconds), str(i), "--job", job)
        assert out.returncode == 0, out.stderr


def start_results(cluster: Cluster, job: str, *extra: str) -> Proc:
    return cluster.spawn(["results", job, "--wait", "--address", cluster.address, *extra],
                         stdout=subprocess.PIPE)


class Lines:
    """The lines a process writes to its stdout pipe, read without blocking past a deadline."""

    def __init__(self, proc: Proc) -> None:
        assert proc.popen.stdout is not None
        self.fd = proc.popen.stdout.fileno()
        self.buffer = b""
        self.lines: list[str] = []

    def read(self, timeout: float) -> bool:
        """Read what arrives within timeout; False once the pipe is closed."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            if not sel.select(timeout):
                return True
        chunk = os.read(self.fd, 65536)
        self.buffer += chunk
        *done, self.buffer = self.buffer.split(b"\n")
        self.lines.extend(line.decode() for line in done)
        return bool(chunk)

    def wait_for(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {n} lines, got {self.lines}"
            assert self.read(remaining), f"output ended after {self.lines}"

    def drain(self, timeout: float = 10) -> list[str]:
        """Everything up to the end of the output (the process has exited)."""
        deadline = time.monotonic() + timeout
        while self.read(max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, "the output did not end"
        return self.lines


def values(text_lines: list[str]) -> list[int]:
    """The values of `TASK<tab>ok<tab>VALUE` lines."""
    out = []
    for line in text_lines:
        _, status, shown = line.split("\t")
        assert status == "ok", line
        out.append(int(shown))
    return out


def test_stopped_runs_lose_no_result(cluster: Cluster) -> None:
    cluster.start_master()
    submit_job(cluster, "slow", 12, 0.4)
    cluster.start_worker()

    first = start_results(cluster, "slow")
    got = Lines(first)
    got.wait_for(2, 60)
    first.popen.send_signal(signal.SIGTERM)
    assert first.wait(10) == 128 + signal.SIGTERM
    printed = values(got.drain())
    assert "stopped by SIGTERM" in first.stderr() and "Traceback" not in first.stderr()

    second = start_results(cluster, "slow", "--json")
    got = Lines(second)
    got.wait_for(2, 60)
    second.popen.send_signal(signal.SIGKILL)
    second.wait(10)
    objects = [json.loads(line) for line in got.drain()]
    assert all(o["status"] == "ok" and o["error"] == "" for o in objects)
    printed += [o["value"] for o in objects]

    rest = cluster.cli("results", "slow", "--wait")
    assert rest.returncode == 0, rest.stderr
    printed += values(rest.stdout.splitlines())
    assert sorted(set(printed)) == list(range(12)), printed
    assert "0 task(s) still open" in rest.stderr
    again = cluster.cli("results", "slow")
    assert again.returncode == 0 and again.stdout == ""  # all were printed, all are gone


def test_each_result_is_printed_as_it_arrives(cluster: Cluster) -> None:
    cluster.start_master()
    submit_job(cluster, "trickle", 3, 1.0)
    proc = start_results(cluster, "trickle")
    got = Lines(proc)
    assert got.read(0.5) and got.lines == []  # no worker yet
    cluster.start_worker()
    got.wait_for(1, 60)
    assert proc.popen.poll() is None  # the first result is out, two tasks still run
    assert sorted(values(got.drain(60))) == [0, 1, 2]  # (read as they come: on a pipe,
    assert proc.wait(10) == 0  # each line is handed over once the one before was read)
    assert "3 result(s), 0 failed; 0 task(s) still open" in proc.stderr()


def test_closed_output_stops_without_a_traceback(cluster: Cluster) -> None:
    cluster.start_master()
    submit_job(cluster, "piped", 6, 0.3)
    cluster.start_worker()
    proc = start_results(cluster, "piped")
    got = Lines(proc)
    got.wait_for(1, 60)
    assert proc.popen.stdout is not None
    proc.popen.stdout.close()
    assert proc.wait(30) == 1
    assert proc.stderr().startswith("taskq: error: could not write the results")
    assert len(proc.stderr().splitlines()) == 1
    rest = cluster.cli("results", "piped", "--wait")
    assert rest.returncode == 0, rest.stderr
    assert len(got.lines) + len(rest.stdout.splitlines()) >= 3


def test_unknown_job_and_failed_tasks(cluster: Cluster) -> None:
    cluster.start_master()
    out = cluster.cli("results", "nosuch", "--wait")
    assert (out.returncode, out.stderr) == (1, "taskq: error: no job named nosuch\n")
    cluster.start_worker()
    for args in (["tasks_mod:add", "1", "2"], ["tasks_mod:fail", "boom"]):
        assert cluster.cli("submit", *args, "--job", "mixed").returncode == 0
    out = cluster.cli("results", "mixed", "--wait", "--json")
    assert out.returncode == 1, out.stderr
    shown = sorted((o["status"], o["value"], o["error"])
                   for o in map(json.loads, out.stdout.splitlines()))
    assert shown == [("error", None, "KeyError: 'boom'"), ("ok", 3, "")]
    assert out.stderr == "2 result(s), 1 failed; 0 task(s) still open\n"
