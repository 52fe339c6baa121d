"""Process plumbing for the benchmark: start, watch and stop helper processes by PID.

Every helper (a master, a worker, a queue server) runs in its own session so that its whole
process group (the process, its forkserver and pool children) can be signalled at once and
is always killed when the benchmark ends, even when a run fails half way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from taskq.client import local

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


class BenchError(RuntimeError):
    """A system could not be started, or a workload did not finish in time."""


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process of this machine: its pid and the fields of /proc/PID/stat after its
    name (state, ppid, pgrp, ...); one that ends while read is left out."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    yield int(entry), fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``condition`` until it is truthy; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a helper: no TASKQ_* leaking in, repo on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    paths = [str(ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


@dataclass
class Helper:
    """One helper process started in its own session."""

    popen: subprocess.Popen[str]
    name: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr_tail(self, chars: int = 1500) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Helpers:
    """The helper processes of one system; ``stop()`` ends every one of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.items: list[Helper] = []
        atexit.register(self.kill)

    def spawn(self, argv: list[str], env: dict[str, str], name: str,
              stdout: int | None = None, stdin: int | None = None,
              prefix: tuple[str, ...] = ()) -> Helper:
        """``python ARGV`` in a new session (run under ``prefix``: on another host)."""
        err = self.workdir / f"{len(self.items)}-{name}.stderr"
        with err.open("w") as err_fh:
            popen = subprocess.Popen([*prefix, sys.executable, *argv], env=env, text=True,
                                     stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                     stderr=err_fh, start_new_session=True, cwd=self.workdir)
        helper = Helper(popen, name, err)
        self.items.append(helper)
        return helper

    def stop(self, grace: float = 5.0) -> None:
        """Stop gracefully, then SIGKILL every group.

        The first helper is the server the others connect to: the others get SIGTERM first
        and up to ``grace`` seconds to say goodbye to it, then the server gets the same.
        """
        for tier in (self.items[1:], self.items[:1]):
            for helper in tier:
                helper.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for helper in tier:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    helper.popen.wait(max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """SIGKILL every group (idempotent) and reap the direct children."""
        for helper in self.items:
            helper.signal_group(signal.SIGKILL)
        for helper in self.items:
            with contextlib.suppress(subprocess.TimeoutExpired):
                helper.popen.wait(10)
            for pipe in (helper.popen.stdout, helper.popen.stdin):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self.items.clear()
        atexit.unregister(self.kill)


def read_line_with(helper: Helper, prefix: str, timeout: float = 60.0) -> str:
    """Read the helper's stdout (bounded) until a line starts with ``prefix``; return the rest."""
    assert helper.popen.stdout is not None
    found = local.read_line_with(helper.popen.stdout, prefix, timeout)
    if found is None:
        raise BenchError(f"{helper.name} did not start (exit code {helper.popen.poll()}): "
                         f"{helper.stderr_tail()}")
    return found


def vm_rss(pid: int) -> int:
    """Resident set size of a process in bytes, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


class StealMeter:
    """The share of CPU time the hypervisor gave to others ("steal", from /proc/stat)
    while a measurement ran: on a shared virtual machine it explains noisy figures."""

    def __init__(self) -> None:
        self.start = self._ticks()

    @staticmethod
    def _ticks() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as fh:
                fields = [int(x) for x in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        return fields[7], sum(fields)  # steal, and all of user..steal

    def percent(self) -> float | None:
        end = self._ticks()
        if self.start is None or end is None or end[1] <= self.start[1]:
            return None
        return 100.0 * (end[0] - self.start[0]) / (end[1] - self.start[1])


def install_signal_exit() -> None:
    """Turn SIGTERM into SystemExit so that every helper is stopped on the way out."""
    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
