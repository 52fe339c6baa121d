"""The worker's pool of threads: up to N tasks at once on threads of the worker's process,
for work that waits (network, disk) rather than computes.

    submit() ──► pending ──► runner thread (started as needed, up to N): runner(payload)
                                  ▲ timers thread: a job past its timeout is TIMED_OUT
                                  │ at once; a thread cannot be killed, so its slot stays
                                  │ busy (``running()``, ``taskq status``) until it returns

An ``async def`` task runs to its end on an event loop of its own in its thread (the
runner does that). A task that crashes the interpreter takes the worker with it: this pool
has no process between them.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

from taskq.worker.pools.job import Job
from taskq.worker.pools.local import LocalPool

THREAD_TIMEOUT_DETAIL = ("ran past its {:g} s timeout; a thread cannot be stopped, so its "
                         "slot stays busy until the task returns")


class ThreadPool(LocalPool):
    """Up to ``size`` threads running ``runner(payload)``."""

    def __init__(self, size: int, runner: Callable[[Any], Any],
                 setup: tuple[str, ...] = ()) -> None:
        super().__init__(size, runner, setup)
        self._threads = 0
        self._idle = 0
        self._deadlines: list[tuple[float, int, Job]] = []
        self._seq = 0
        self._timers = threading.Condition(self._lock)
        self._timer_thread: threading.Thread | None = None

    def _on_submit(self) -> None:
        with self._lock:
            if self._idle >= len(self._pending) or self._threads >= self._size + self._seceded:
                return
            self._threads += 1
        threading.Thread(target=self._serve, name="taskq-pool-thread", daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                job = self._begin()
                while job is None and not self._closed:
                    self._work.wait()
                    job = self._begin()
                self._idle -= 1
                if job is None:
                    self._threads -= 1
                    return
                if job.timeout is not None:
                    self._watch(job)
            self._finish(job, self._runner(job.payload))

    def _watch(self, job: Job) -> None:
        """Under the lock: time the job out at its deadline."""
        self._seq += 1
        heapq.heappush(self._deadlines, (time.monotonic() + (job.timeout or 0.0), self._seq,
                                         job))
        self._timers.notify()
        if self._timer_thread is None:
            self._timer_thread = threading.Thread(target=self._time_out, name="taskq-timers",
                                                  daemon=True)
            self._timer_thread.start()

    def _time_out(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    wait = (self._deadlines[0][0] - time.monotonic() if self._deadlines
                            else None)
                    if wait is not None and wait <= 0:
                        break
                    self._timers.wait(wait)
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._deadlines)
            self._expire(job, THREAD_TIMEOUT_DETAIL.format(job.timeout or 0.0))

    def _shutdown(self) -> None:
        with self._lock:
            self._timers.notify_all()
