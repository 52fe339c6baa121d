"""The owner's record of one pool process: its pipe, the jobs written to it, and the
framing of the results it sends back.

    owner ── write(parts) ── [packed job]... ──► pool process
          ◄── receive() ◄── [len | result]... ◄─┘      results arrive in job order

``pools.driver`` schedules jobs over these records; everything here is about one process,
down to how it ended (``exit_detail``): its exit code or signal, and "out of memory" only
where the kernel's count of OOM kills in the worker's memory cgroup (v2 ``memory.events``,
v1 ``memory.oom_control``) went up while it ran.
"""

from __future__ import annotations

import functools
import os
import signal
import struct
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from taskq.protocol import frames

# Connection.send_bytes framing of results: a 4-byte length (results are kept under 2 GiB).
_INT = struct.Struct("!i")
# Bytes a read from a child asks for; up to _BIG_CHUNK while a large result comes in.
_CHUNK, _BIG_CHUNK = 1 << 16, 1 << 22
_CGROUP_ROOT = "/sys/fs/cgroup"


def memory_events_file(proc_cgroup: str = "/proc/self/cgroup",
                       root: str = _CGROUP_ROOT) -> str | None:
    """The file in which the kernel counts OOM kills in this process's memory cgroup (an
    ``oom_kill N`` line: v2 ``memory.events``, v1 ``memory.oom_control``); None if none."""
    try:
        with open(proc_cgroup) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        relative = path.strip().lstrip("/")
        if not controllers:  # v2: one hierarchy
            candidate = os.path.join(root, relative, "memory.events")
        elif "memory" in controllers.split(","):  # v1: the memory controller's hierarchy
            candidate = os.path.join(root, "memory", relative, "memory.oom_control")
        else:
            continue
        if os.path.isfile(candidate):
            return candidate
    return None


@functools.cache
def _memory_events() -> str | None:
    return memory_events_file()


def oom_kill_count(events: str | None = None) -> int | None:
    """The kernel's count of OOM kills in this process's memory cgroup (read from ``events``,
    by default the file ``memory_events_file`` finds); None where it cannot be read."""
    path = events if events is not None else _memory_events()
    if path is None:
        return None
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int, proc: str = "/proc") -> int:
    """A process's resident memory in bytes (``/proc/PID/statm``); 0 where unknown."""
    try:
        with open(f"{proc}/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(eq=False, slots=True)
class Child:
    """One pool process as its owner sees it (only the owner's driver thread changes it)."""

    proc: BaseProcess
    conn: Connection
    fd: int
    sentinel: int
    # (job, packed job) written and not answered yet; the head is the one running
    fifo: deque[tuple[Any, list[frames.Part]]] = field(default_factory=deque)
    head_start: float = 0.0
    assigned: int = 0  # jobs ever written to it
    completed: int = 0
    accepting: bool = True
    ready: bool = False  # its initializer ran (it said READY): jobs it is sent may begin
    setup_error: str = ""  # why its initializer failed (it exits)
    seceded: bool = False  # its task waits on other tasks: nothing more is written to it
    readable: bool = True  # False once its pipe hit EOF
    parts: list[bytes] = field(default_factory=list)  # a partly received result
    have: int = 0
    need: int = 0
    # the kernel's count of OOM kills in the cgroup as the process started (None: unknown)
    oom_kills: int | None = field(default_factory=oom_kill_count)

    def write(self, parts: list[frames.Part]) -> None:
        """Write packed jobs as one message; OSError if the process is gone."""
        frames.write_message(self.fd, parts)

    def receive(self) -> list[memoryview] | None:
        """One read of what the process sent: every whole result in it (a burst of results
        takes one read), in order; None at end of file."""
        try:
            data = os.read(self.fd, min(max(_CHUNK, self.need - self.have), _BIG_CHUNK))
        except OSError:
            data = b""
        if not data:
            self.readable = False
            return None
        self.parts.append(data)
        self.have += len(data)
        return self._split() if self.have >= self.need else []

    def _split(self) -> list[memoryview]:
        """Cut the whole results out of what was received; keep the start of the next one."""
        buf = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        view, pos, end, need, head = memoryview(buf), 0, len(buf), _INT.size, _INT.size
        results = []
        while end - pos >= head:
            (size,) = _INT.unpack_from(buf, pos)
            if end - pos < head + size:
                need = head + size
                break
            results.append(view[pos + head : pos + head + size])
            pos += head + size
        rest = buf[pos:] if pos else buf
        self.parts, self.have, self.need = ([rest] if rest else []), len(rest), need
        return results


def exit_detail(exitcode: int | None, oom_kills_at_start: int | None = None) -> str:
    """How a process ended, in words. A SIGKILL is said to be out of memory only if the
    kernel's count of OOM kills in the cgroup (``oom_kill_count``) is above what it was as
    the process started (``oom_kills_at_start``); where either is unknown, memory goes
    unmentioned."""
    if exitcode is None:
        return "process ended (exit status unknown)"
    if exitcode >= 0:
        return f"process exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = str(-exitcode)
    hint = ""
    if -exitcode == signal.SIGKILL and oom_kills_at_start is not None:
        now = oom_kill_count()
        if now is not None and now > oom_kills_at_start:
            hint = (" (out of memory: the kernel's OOM killer killed a process of this "
                    "worker's cgroup while it ran)")
    return f"process killed by signal {name}{hint}"
