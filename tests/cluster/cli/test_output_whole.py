"""What the first hour showed: tables cut ids and statuses at 80 columns or on a pipe, and
`taskq top` would not quit on `q`. Each test runs the command as a user does."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(120)

JOB = "nightly-thumbnails-of-the-whole-photo-archive"  # task ids start with the job's name


def narrow(cluster: Cluster) -> dict[str, str]:
    return {**cluster.env, "TASKQ_ADDRESS": cluster.address, "COLUMNS": "80"}


def ended_history(cluster: Cluster, n: int) -> list[dict[str, object]]:
    def ended() -> list[dict[str, object]] | None:
        out = cluster.cli("history", "--job", JOB, "--json")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        return rows if len(rows) == n and all(r["outcome"] for r in rows) else None

    return wait_for(ended, 60, f"{n} tasks of {JOB} to end")  # type: ignore[return-value]


def test_history_and_status_on_a_pipe_at_80_columns_show_every_value_whole(
        cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker()
    cluster.wait_workers(1)
    for args in (["tasks_mod:add", "1", "2"], ["tasks_mod:fail", "a-message-to-fail-with"]):
        out = cluster.cli("submit", *args, "--job", JOB)
        assert out.returncode == 0, out.stderr
    rows = ended_history(cluster, 2)

    history = cluster.cli("history", "--job", JOB, env=narrow(cluster))
    assert history.returncode == 0, history.stderr
    for row in rows:
        assert row["task_id"] in history.stdout and len(str(row["task_id"])) > 40
        assert str(row["outcome"]) in history.stdout.split(), (row["outcome"], history.stdout)
    assert "KeyError" in history.stdout and "…" not in history.stdout, history.stdout

    status = cluster.cli("status", env=narrow(cluster))
    assert status.returncode == 0, status.stderr
    for worker in cluster.status()["workers"]:
        assert worker["worker_id"] in status.stdout, status.stdout
    assert JOB in status.stdout and "…" not in status.stdout, status.stdout


def test_a_narrow_terminal_folds_values_instead_of_cutting_them() -> None:
    from rich.console import Console

    from taskq.cli.render import print_history

    console = Console(width=40, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    task_id = f"job:{JOB}-0123456789ab"
    print_history([{"task_id": task_id, "job": JOB, "queue": "default", "ended": 0,
                    "outcome": "died", "attempts": [{"error_type": "",
                                                     "detail": "died: process killed"}]}],
                  console)
    console.file.close()
    text = console.export_text()
    assert "…" not in text
    unfolded = "".join(line.split("│")[1].strip() for line in text.splitlines()
                       if line.count("│") > 2)
    assert task_id in unfolded, text


def _as_on_a_terminal() -> None:
    """Ctrl-C interrupts, as in a user's shell, even where this suite was started with
    SIGINT ignored (a background job of a script): ignored, it would be inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Pty:
    """A process on a pseudo-terminal, as a user runs it: its output read as it comes."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.fd, child = os.openpty()
        # faulthandler: a process that hangs shows where, on SIGABRT (``stacks``)
        env = {**narrow(cluster), "TERM": "xterm", "LINES": "40", "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "taskq", *args], stdin=child,
                                     stdout=child, stderr=child, env=env, cwd=cluster.tmp,
                                     start_new_session=True, preexec_fn=_as_on_a_terminal)
        os.close(child)
        self.output = b""

    def read_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Read the output until ``condition`` holds (once it does, what is already written
        is read too); fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            done = condition()
            remaining = deadline - time.monotonic()
            assert done or remaining > 0, f"timed out waiting for {what}: {self.output[-2000:]!r}"
            if not select.select([self.fd], [], [], 0 if done else min(remaining, 0.2))[0]:
                if done:
                    return
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                chunk = b""
            self.output += chunk
            if done and not chunk:
                return

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def stacks(self) -> str:
        """Where each thread of a process that does not end is: faulthandler's dump."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGABRT)
            with contextlib.suppress(AssertionError):
                self.read_until(self.exited, 10, "the dump of its stacks")
        return self.output[-6000:].decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.fd)


@pytest.mark.parametrize("end", ["q", "SIGINT"])
def test_top_ends_cleanly_on_q_and_on_ctrl_c(cluster: Cluster, end: str) -> None:
    cluster.start_master()
    top = Pty(cluster, "top")
    try:
        top.read_until(lambda: b"queues" in top.output, 30, "the first frame of top")
        if end == "q":
            os.write(top.fd, b"q")
        else:
            os.kill(top.proc.pid, signal.SIGINT)
        try:
            top.read_until(top.exited, 10, f"top to end on {end}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{top.stacks()}") from None
        assert top.proc.returncode == 0, top.output[-2000:]
        assert b"Traceback" not in top.output
    finally:
        top.close()


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_lines(raw: bytes) -> list[str]:
    """Each line of terminal output as it starts after its last carriage return."""
    text = ANSI.sub("", raw.decode(errors="replace"))
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


def submit_slow_job(cluster: Cluster, job: str, n: int) -> None:
    for i in range(n):
        out = cluster.cli("submit", "tasks_mod:sleep_then", "0.3", str(i), "--job", job)
        assert out.returncode == 0, out.stderr


def test_results_wait_on_a_terminal_never_starts_a_result_on_the_bar_line(
        cluster: Cluster) -> None:
    cluster.start_master()
    submit_slow_job(cluster, "shared", 5)
    cluster.start_worker()
    results = Pty(cluster, "results", "shared", "--wait")
    try:
        results.read_until(results.exited, 20, "results --wait to end")
        assert results.proc.returncode == 0, results.output[-2000:]
    finally:
        results.close()
    lines = screen_lines(results.output)
    shown = [line for line in lines if "\tok\t" in line]
    assert len(shown) == 5, lines
    assert all(line.startswith("job:shared-") for line in shown), shown
    assert any("job shared" in line for line in lines), lines  # the bar was drawn


def test_results_wait_puts_results_on_stdout_and_the_bar_on_stderr(cluster: Cluster) -> None:
    cluster.start_master()
    submit_slow_job(cluster, "split", 3)
    cluster.start_worker()
    terminal, child = os.openpty()
    env = {**narrow(cluster), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "taskq", "results", "split", "--wait"],
                            stdin=child, stdout=subprocess.PIPE, stderr=child, env=env,
                            cwd=cluster.tmp, start_new_session=True)
    os.close(child)
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    got = {out_fd: b"", terminal: b""}
    try:  # read both as they come: on a pipe, a result leaves once its reader took it
        read_all(got, 60)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        os.close(terminal)
    stdout, stderr = got[out_fd].decode(), got[terminal]
    assert proc.returncode == 0, stderr[-2000:]
    assert sorted(line.split("\t", 1)[1] for line in stdout.splitlines()) == \
        [f"ok\t{i}" for i in range(3)], stdout
    assert all(line.startswith("job:split-") for line in stdout.splitlines()), stdout
    assert b"\tok\t" not in stderr and b"job split" in stderr, stderr[-2000:]


def read_all(got: dict[int, bytes], timeout: float) -> None:
    """Read each file descriptor into ``got`` until every one ends (EOF, or EIO: a
    terminal whose every writer exited)."""
    deadline = time.monotonic() + timeout
    open_fds = set(got)
    while open_fds:
        assert time.monotonic() < deadline, got
        for fd in select.select(list(open_fds), [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            got[fd] += chunk
            if not chunk:
                open_fds.discard(fd)
