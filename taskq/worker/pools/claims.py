"""Who decides first whether a job written ahead to a pool process runs: the process or
its owner. One small shared record per process, under one lock::

    owner: drop(seq) ──► lock: started < seq? mark dropped[seq] : too late ──► True / False
    child: begin(seq) ─► lock: dropped[seq]?  skip it       : started = seq ──► runs it

Jobs are numbered per process in the order they are written (the process runs them in that
order), so the owner knows each job's number from its place in the process's FIFO. A job the
owner dropped is answered by the process as skipped, in order, without running it.
"""

from __future__ import annotations

from multiprocessing.context import BaseContext
from typing import Any

# Slots in the ring of dropped job numbers: more than the jobs written ahead to one process.
RING = 64
# Longest the owner waits for the lock: only a process killed while holding it (a window of
# a few instructions) can keep it; the owner then treats the job as started.
_LOCK_WAIT_S = 0.5


class Claims:
    """The shared record of one pool process; passed to it when it starts."""

    def __init__(self, ctx: BaseContext) -> None:
        self._lock: Any = ctx.Lock()
        self._started: Any = ctx.RawValue("q", -1)
        self._dropped: Any = ctx.RawArray("q", [-1] * RING)

    def begin(self, seq: int) -> bool:
        """In the process, before job ``seq``: True to run it, False if it was dropped."""
        with self._lock:
            if self._dropped[seq % RING] == seq:
                return False
            self._started.value = seq
            return True

    def drop(self, seq: int) -> bool:
        """In the owner: make sure job ``seq`` never runs; False if it began already."""
        if not self._lock.acquire(timeout=_LOCK_WAIT_S):
            return False
        try:
            if self._started.value >= seq:
                return False
            self._dropped[seq % RING] = seq
            return True
        finally:
            self._lock.release()
