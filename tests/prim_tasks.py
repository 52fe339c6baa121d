"""Tasks and helper processes for the shared-primitive tests (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import taskq


def bump_file_under_lock(path: str, times: int) -> int:
    """Read-modify-write a number in a file ``times`` times, each under the cluster lock;
    a pause between the read and the write makes any overlap lose an update."""
    client = taskq.current_client()
    lock = client.lock("file-lock", lease=10)
    for _ in range(times):
        with lock:
            value = int(Path(path).read_text() or "0")
            time.sleep(0.002)
            Path(path).write_text(str(value + 1))
    return os.getpid()


def hold_forever(address: str, key: str, ready: str, lease: float) -> None:
    """Take the lock, say so in the ``ready`` file, and hold it until killed."""
    client = taskq.Client(address, key)
    client.lock("held", lease=lease).acquire()
    Path(ready).write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def consume(address: str, key: str, hang: bool, flag: str) -> None:
    """Take items until the queue stays empty for 3 s; record each as done in a dict.
    With ``hang``, stop on the first item before acknowledging it, and write the item
    to ``flag``."""
    client = taskq.Client(address, key)
    queue, done = client.queue("jobs", lease=2), client.dict("done")
    seen = client.counter("processed")
    while True:
        try:
            item = queue.get(timeout=3)
        except Exception:
            break
        with item as value:
            if hang:
                Path(flag).write_text(str(value))
                while True:
                    time.sleep(60)
            seen.add(1)
            done[str(value)] = os.getpid()
    client.shutdown(wait=False)


if __name__ == "__main__":  # python prim_tasks.py FUNC ARGS...: run a helper process
    fn = {"hold_forever": hold_forever, "consume": consume}[sys.argv[1]]
    args: list[object] = list(sys.argv[2:])
    if sys.argv[1] == "hold_forever":
        args[3] = float(sys.argv[5])
    else:
        args[2] = sys.argv[4] == "hang"
    fn(*args)  # type: ignore[operator]
