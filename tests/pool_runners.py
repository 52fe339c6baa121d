"""Runner functions for the pool tests, importable by forkserver children.

Run as a script, this module is an owner process for the orphan test: it starts a pool,
prints its children's pids (and the forkserver's), puts one child in a long job and blocks.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_KEEP: list[bytes] = []  # memory held on purpose by ("alloc", mb) jobs


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _alloc(mb: int) -> int:
    _KEEP.append(b"x" * (mb * 2**20))  # touched, so it counts in the resident set
    return os.getpid()


def _sleep_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _raise(message: str) -> None:
    raise ValueError(message)


_OPS: dict[str, Callable[..., Any]] = {
    "value": lambda x: x,
    "raise": _raise,
    "exit": os._exit,
    "kill": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "sleep": _sleep,
    "alloc": _alloc,
    "pid": os.getpid,
    "sleep_pid": _sleep_pid,
    "env": os.environ.get,
    "bytes": lambda n: b"r" * n,
    "lambda": lambda: lambda: None,
}


def run(payload: tuple[Any, ...]) -> Any:
    """Act out one payload: ("value", x), ("raise", msg), ("exit", code), ("kill",),
    ("sleep", s), ("alloc", mb), ("pid",), ("sleep_pid", s), ("env", name),
    ("bytes", n) (n bytes back), ("lambda",) (an unpicklable result)."""
    return _OPS[payload[0]](*payload[1:])


def noop(payload: Any) -> Any:
    return payload


def _owner_main() -> None:
    from multiprocessing import forkserver

    from taskq.worker.pools.process import Job, ProcessPool

    pool = ProcessPool(2, run)
    pool.submit(Job("a", ("sleep_pid", 0.2)))
    pool.submit(Job("b", ("sleep_pid", 0.2)))
    pool.start()
    pids: list[int] = []
    while len(pids) < 2:
        pids.extend(o.value for o in pool.get_outcomes(5.0))
    pool.submit(Job("long", ("sleep", 600)))
    while pool.running() < 1:
        pool.get_outcomes(0.01)
    server = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    print(" ".join(str(pid) for pid in [*pids, server] if pid), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _owner_main()
