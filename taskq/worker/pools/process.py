"""The worker's local pool of processes: runs jobs and tells exactly how each one ended.

The pool owns its child processes, the pipes to them and one driver thread. It knows nothing
of tasks: a job's payload is handed to ``runner(payload)`` in a child, and every submitted
job ends exactly one way: an Outcome (DONE, CRASHED, TIMED_OUT, CANCELLED) from
get_outcomes, or the Job itself handed back by take_back or stop.

    submit() -> pending --+                     +--> child 1: runner(payload), in order
                          |   driver thread     |      (up to `depth` jobs written ahead)
    take_back() <---------+-- wait() on pipes, -+--> child 2 ...
                              sentinels, wake   |
    get_outcomes() <- outcomes <- results, crashes, timeouts

Payloads are packed by submit (``protocol.frames``: large buffers travel out of band, uncopied).
While the driver waits, submit writes the job to an idle child itself: a task then reaches
its process without first waking the driver. Each child reads messages of jobs from its own
Pipe and answers every job, in order, with one pickled ``(status, value, rss)``. The pool
keeps each child's FIFO of written jobs, so the head of the FIFO is the job the child runs:
when the child's sentinel fires, the head crashed and the jobs behind it never started (they
are dispatched again); when the head runs past its timeout, or ``kill_task`` names it, the
child is killed the same way (and replaced). A child's tasks report progress into a shared
slot of its own (``taskq.worker.pools.progress_slot``), read by ``progress()``.
A head job starts when the previous result of its child arrives, or when it is written to an
idle child. Jobs too big to sit in a busy child's pipe wait, in order, for an idle child.

The pool's state and its driver thread are ``taskq.worker.pools.driver``; Job and Outcome, shared
with the thread and asyncio pools, are ``taskq.worker.pools.job``; the owner's record of each child,
with its pipe and result framing, is ``taskq.worker.pools.child_record``.
Children come from the "forkserver" context, since the owning worker runs threads. Each has
a watchdog thread blocked on a pipe whose write end only the owner holds: when the owner
dies, even by SIGKILL, the read sees EOF and the child exits at once, busy or not. The
forkserver and the children ignore SIGTERM and SIGINT (``taskq.worker.pools.shield``): a
signal sent to the worker's whole process group stops the worker, which drains its pool
and stops it itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from multiprocessing.connection import wait

from taskq.errors import SetupError
from taskq.protocol import frames
from taskq.protocol.progress import Progress
from taskq.worker.pools.child import child_main
from taskq.worker.pools.child_record import exit_detail
from taskq.worker.pools.driver import PoolDriver
from taskq.worker.pools.job import Job, Outcome, OutcomeKind

__all__ = ["Job", "Outcome", "OutcomeKind", "ProcessPool"]

SHIELD = "taskq.worker.pools.shield"  # imported by the forkserver alone, never here


class ProcessPool(PoolDriver):
    """``procs`` processes running ``runner(payload)``; see the module docstring."""

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start the children and the driver thread."""
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        # what a child needs, loaded once in the forkserver: never the worker's own modules
        # (a child loads no master, network or CLI code)
        modules = [child_main.__module__, getattr(self._runner, "__module__", "__main__"),
                   SHIELD]  # (and a group's SIGTERM stops neither it nor its children)
        self._ctx.set_forkserver_preload(modules)  # no effect once the forkserver runs
        self._dog_r, self._dog_w = self._ctx.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        atexit.register(self.kill)
        for _ in range(self._procs):
            self._children.append(self._spawn())
        if self._wait_ready:
            self._await_ready()
        self._thread.start()

    def _await_ready(self) -> None:
        """Wait until every child's initializer ran (``--setup`` hooks); SetupError, the
        pool killed, if one failed or its process died first."""
        for child in self._children:
            while not child.ready and not child.setup_error:
                ready = wait([child.conn, child.sentinel])
                results = child.receive() if child.conn in ready else None
                for data in results or ():
                    self._on_result(child, data, time.monotonic())
                if results is None and not child.setup_error:
                    child.proc.join(1.0)
                    child.setup_error = (f"a pool process ended during its setup: "
                                         f"{exit_detail(child.proc.exitcode)}")
            if child.setup_error:
                self.kill()
                raise SetupError(child.setup_error)

    def submit(self, job: Job) -> None:
        """Queue a job; thread-safe; blocks at most while writing it to an idle child. The
        payload is pickled here (an error is raised here); RuntimeError once stopped."""
        parts = frames.pack(job.payload)
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is stopped")
            self._pending.append((job, parts))
            self._in_flight += 1
            poke, self._want_wake = self._want_wake, False
        if poke and not self._dispatch_here(job):
            self._poke()

    def _dispatch_here(self, job: Job) -> bool:
        """Dispatch from the submitting thread while the driver waits, so a job reaches an
        idle child without waking the driver first; False if the driver is busy (or must
        wake anyway: to watch a new timeout, or to put back a job a dead child refused)."""
        if not self._io.acquire(blocking=False):
            return False
        try:
            self._dispatch()
            self._publish_started()
            return job.timeout is None and not self._requeue
        finally:
            self._io.release()

    def cancel(self, task_id: str) -> bool:
        """Make sure a job never runs: True if it had not begun (no outcome will come for it,
        and it is not handed back), False if it runs, ended, or is unknown here."""
        with self._io, self._cond:
            for entries in (self._pending, self._requeue):
                for entry in entries:
                    if entry[0].task_id == task_id:
                        entries.remove(entry)
                        self._in_flight -= 1
                        self._assigned -= entries is self._requeue
                        return True
            for child in self._children:
                for pos, (job, _) in enumerate(child.fifo):
                    if job.task_id != task_id:
                        continue
                    if pos == 0 or not self._claims[child].drop(child.completed + pos):
                        return False
                    self._dropped.add(task_id)
                    self._in_flight -= 1
                    return True
        return False

    def kill_task(self, task_id: str) -> bool:
        """Stop a job while it runs: its process is killed and replaced, the jobs written
        ahead to it go to other processes, and its outcome is CANCELLED. False if it does
        not run now (not begun: see ``cancel``; or it ended)."""
        with self._io:
            child = next((c for c in self._children
                          if c.fifo and c.fifo[0][0].task_id == task_id), None)
            now = time.monotonic()
            if child is not None:
                self._drain(child, now)  # it may have ended just now
            if child is None or not child.fifo or child.fifo[0][0].task_id != task_id:
                return False
            child.proc.kill()
            self._lose_head(child, OutcomeKind.CANCELLED,
                            "cancelled while it ran; its process was killed", now)
            self._detach(child)
            self._publish()
        self._poke()  # the driver starts its replacement
        return True

    def progress(self) -> dict[str, Progress]:
        """The running jobs' progress that changed since the last call."""
        out = {}
        with self._io:
            for child in self._children:
                slot = self._slots.get(child)
                got = slot.read(child.completed) if slot is not None and child.fifo else None
                if got is not None:
                    out[child.fifo[0][0].task_id] = got
        return out

    def running(self) -> int:
        """Jobs being run by a child right now."""
        return sum(1 for child in self._children if child.fifo)

    def pids(self) -> list[int]:
        """The process ids of the pool's live children (read only)."""
        return [pid for child in self._children if (pid := child.proc.pid) is not None]

    def take_back(self) -> list[Job]:
        """Remove and return the jobs not written to any child."""
        with self._cond:
            jobs = [job for job, _ in self._pending]
            self._pending.clear()
            self._in_flight -= len(jobs)
            return jobs

    def stop(self, grace: float) -> list[Job]:
        """Let written jobs finish for up to ``grace`` s, then kill; return what did not end."""
        with self._cond:
            self._draining, self._want_wake = True, False
            if self._started:
                done = lambda: not self._assigned or self._error or self._closed  # noqa: E731
                self._cond.wait_for(done, grace)
        return self._shutdown()

    def kill(self) -> None:
        """SIGKILL every child, join it and the driver; idempotent."""
        self._shutdown()

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> list[Job]:
        with self._shutdown_lock:
            if self._closed:
                return []
            with self._cond:
                self._closed = self._draining = True
                self._want_wake = False
                self._cond.notify_all()
            if not self._started:
                return self.take_back()
            self._closing = True
            self._poke()
            if self._thread.ident is not None and self._thread is not threading.current_thread():
                self._thread.join()
            with self._io:
                unfinished = self._kill_children()
            with self._cond:
                self._in_flight -= len(unfinished)
                self._assigned = 0
            unfinished += self.take_back()
            self._dog_r.close()
            self._dog_w.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            atexit.unregister(self.kill)
            return unfinished

