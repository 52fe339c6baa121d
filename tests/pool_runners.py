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
from typing import Any

_KEEP: list[bytes] = []  # memory held on purpose by ("alloc", mb) jobs


def run(payload: tuple[Any, ...]) -> Any:
    """Act out one payload: ("value", x), ("raise", msg), ("exit", code), ("kill",),
    ("sleep", s), ("alloc", mb), ("pid",), ("sleep_pid", s)."""
    op = payload[0]
    if op == "value":
        return payload[1]
    if op == "raise":
        raise ValueError(payload[1])
    if op == "exit":
        os._exit(payload[1])
    if op == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if op == "sleep":
        time.sleep(payload[1])
        return None
    if op == "alloc":
        _KEEP.append(b"x" * (payload[1] * 2**20))
        return os.getpid()
    if op == "pid":
        return os.getpid()
    if op == "sleep_pid":
        time.sleep(payload[1])
        return os.getpid()
    raise ValueError(f"unknown op {op!r}")


def noop(payload: Any) -> Any:
    return payload


def _owner_main() -> None:
    from multiprocessing import forkserver

    from taskq.pool import Job, ProcessPool

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
