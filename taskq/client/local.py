"""A throwaway cluster on this machine: one master and one worker process on loopback.

``Client()`` with no address starts one, so a new user has a working cluster with no
set-up; ``close()`` (called by the client's shutdown) stops both, by PID. The first one a
process starts is said on stderr (``say_started``), so no one takes it for a real cluster.

    LocalCluster ── spawn ──► taskq master --host 127.0.0.1 --port 0 --in-memory
                  │              prints "taskq master listening on 127.0.0.1:PORT"
                  └─ spawn ──► taskq worker --connect 127.0.0.1:PORT --procs N
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from typing import IO

from taskq.defaults import ENV_ADDRESS, ENV_AUTHKEY
from taskq.errors import ConnectError

READY_PREFIX = "taskq master listening on "
START_TIMEOUT_S = 30.0  # a cold interpreter on a loaded machine can be slow to import


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started us dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``python -m taskq ARGS`` tied to this process's life."""
    proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603 -- runs this interpreter on taskq's own fixed arguments
        [sys.executable, "-m", "taskq", *args], env=env, text=True,
        preexec_fn=_die_with_parent, **kwargs)
    return proc


def read_line_with(stream: IO[str], prefix: str, timeout: float) -> str | None:
    """Read lines (for at most ``timeout`` s) until one starts with ``prefix``; return the
    rest of that line, or None if the stream ended or the time ran out first."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0 and sel.select(remaining):
            line = stream.readline()
            if not line:
                return None
            if line.startswith(prefix):
                return line[len(prefix):].strip()
    return None


def read_address(proc: subprocess.Popen[str], timeout: float) -> str:
    """Wait (bounded) for the master's "listening on" line and return HOST:PORT."""
    assert proc.stdout is not None  # noqa: S101 -- narrows a type: the pipe was asked for just above
    address = read_line_with(proc.stdout, READY_PREFIX, timeout)
    if address is None:
        raise ConnectError(f"the local master did not start within {timeout:g} s "
                           f"(exit code {proc.poll()})")
    return address


def stop_process(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: only ever the process we started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


_said = threading.Event()  # set once this process has said it started a local cluster
_said_lock = threading.Lock()


def say_started(address: str) -> None:
    """One line on stderr, the first time a process starts a local cluster: what it is and
    how to use a real master instead."""
    with _said_lock:
        if _said.is_set():
            return
        _said.set()
    sys.stderr.write(f"taskq: no {ENV_ADDRESS} set: started a local cluster (a master on "
                     f"{address} and one worker) that stops when this process exits; to use a "
                     f"real master, set {ENV_ADDRESS}=HOST:PORT and {ENV_AUTHKEY}\n")
    sys.stderr.flush()


class LocalCluster:
    """A master and a worker on loopback with a random key; ``close()`` stops them."""

    def __init__(self, procs: int | None = None, log_level: str = "warning") -> None:
        self.authkey = secrets.token_urlsafe(32).encode()
        env = {**os.environ, ENV_AUTHKEY: self.authkey.decode()}
        env.pop("TASKQ_ADDRESS", None)
        for name in ("TASKQ_TLS_CA", "TASKQ_TLS_CERT", "TASKQ_TLS_KEY"):  # on loopback: plain
            env.pop(name, None)
        common = ["--log-level", log_level]
        self.master = spawn(["master", "--host", "127.0.0.1", "--port", "0", "--in-memory",
                             *common], env, stdout=subprocess.PIPE)
        self.workers: list[subprocess.Popen[str]] = []
        try:
            self.address = read_address(self.master, START_TIMEOUT_S)
            procs_args = ["--procs", str(procs)] if procs else []
            self.workers.append(spawn(["worker", "--connect", self.address, "--grace", "5",
                                       *procs_args, *common], env))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for proc in self.workers:
            stop_process(proc)
        stop_process(self.master)
        self.workers.clear()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
