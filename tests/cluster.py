"""Real taskq processes for tests: a master and workers as subprocesses on loopback.

Every process is started in its own session so its whole group (a worker, its forkserver
and pool processes) can be signalled and is always killed at the end of the test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskq.client.local import READY_PREFIX as READY
from taskq.client.local import read_line_with

ROOT = Path(__file__).resolve().parent.parent
# where a worker finds what the tests submit: the helpers here and the test modules of every
# tier and role (a function defined in a test module is pickled by reference to it)
TEST_PATH = os.pathsep.join(str(p) for p in [ROOT, ROOT / "tests",
                                             *sorted((ROOT / "tests").glob("*/*/"))])


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             every: float = 0.02) -> object:
    """Poll a condition until it is truthy; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    args: list[str]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def kill_all(self) -> None:
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        wait_for(lambda: not group_pids(self.pid), 10, f"group {self.pid} to exit")
        for stream in (self.popen.stdout, self.popen.stdin):
            if stream is not None:
                stream.close()


@dataclass
class Cluster:
    tmp: Path
    authkey: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: list[Proc] = field(default_factory=list)
    address: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
        env["TASKQ_AUTHKEY"] = self.authkey
        env["TASKQ_STATE_DIR"] = str(self.tmp / "state")
        env["PYTHONPATH"] = TEST_PATH
        env["COLUMNS"] = "200"  # usage errors on one line each
        return env

    def spawn(self, args: list[str], env: dict[str, str] | None = None,
              stdout: int | None = None, cwd: Path | None = None,
              prefix: tuple[str, ...] = ()) -> Proc:
        name = f"{len(self.procs)}-{args[0]}"
        err = self.tmp / f"{name}.stderr"
        with err.open("w") as err_file:
            popen = subprocess.Popen([*prefix, sys.executable, "-m", "taskq", *args],
                                     env=env or self.env, stdout=stdout or subprocess.DEVNULL,
                                     stderr=err_file, text=True, start_new_session=True,
                                     cwd=cwd or self.tmp)
        proc = Proc(popen, args, err)
        self.procs.append(proc)
        return proc

    def start_master(self, *extra: str, port: int = 0, host: str = "127.0.0.1") -> Proc:
        args = ["master", "--host", host, "--port", str(port), "--lost-after", "2", *extra]
        if "--state" not in extra:
            args.append("--in-memory")
        proc = self.spawn(args, stdout=subprocess.PIPE)
        line = wait_ready(proc)
        self.address = line
        return proc

    def start_worker(self, *extra: str, procs: int = 1, prefix: tuple[str, ...] = ()) -> Proc:
        return self.spawn(["worker", "--connect", self.address, "--procs", str(procs),
                           "--log-level", "debug", *extra], prefix=prefix)

    def client(self, **kwargs: object):  # -> taskq.Client
        import taskq

        return taskq.Client(self.address, self.authkey, **kwargs)  # type: ignore[arg-type]

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        env = env or {**self.env, "TASKQ_ADDRESS": self.address}
        return subprocess.run([sys.executable, "-m", "taskq", *args], env=env, text=True,
                              capture_output=True, timeout=timeout, cwd=self.tmp)

    def status(self) -> dict:  # type: ignore[type-arg]
        import json

        out = self.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def wait_workers(self, n: int, timeout: float = 30) -> None:
        wait_for(lambda: len(self.status()["workers"]) >= n, timeout, f"{n} workers")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill_all()
        self.procs.clear()


def wait_ready(proc: Proc, timeout: float = 30) -> str:
    """Read the master's stdout (bounded) until it says where it listens."""
    assert proc.popen.stdout is not None
    address = read_line_with(proc.popen.stdout, READY, timeout)
    if address is None:
        raise AssertionError(f"master did not start: {proc.stderr()[-2000:]}")
    return address
