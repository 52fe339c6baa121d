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

Payloads are packed by submit (``taskq.fdio``: large buffers travel out of band, uncopied).
While the driver waits, submit writes the job to an idle child itself: a task then reaches
its process without first waking the driver. Each child reads messages of jobs from its own
Pipe and answers every job, in order, with one pickled ``(status, value, rss)``. The pool
keeps each child's FIFO of written jobs, so the head of the FIFO is the job the child runs:
when the child's sentinel fires, the head crashed and the jobs behind it never started (they
are dispatched again); when the head runs past its timeout, or ``kill_task`` names it, the
child is killed the same way (and replaced). A child's tasks report progress into a shared
slot of its own (``taskq.pool_progress``), read by ``progress()``.
A head job starts when the previous result of its child arrives, or when it is written to an
idle child. Jobs too big to sit in a busy child's pipe wait, in order, for an idle child.

The owner's record of each child, with its pipe and result framing, is ``taskq.pool_proc``.
Children come from the "forkserver" context, since the owning worker runs threads. Each has
a watchdog thread blocked on a pipe whose write end only the owner holds: when the owner
dies, even by SIGKILL, the read sees EOF and the child exits at once, busy or not.
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing.connection import wait
from typing import Any

from taskq import fdio
from taskq.defaults import CHILD_DEPTH
from taskq.pool_child import OK, RAISED, SKIPPED, child_main
from taskq.pool_claim import RING, Claims
from taskq.pool_proc import Child, exit_detail
from taskq.pool_progress import ProgressSlot
from taskq.report import Progress

__all__ = ["Job", "Outcome", "OutcomeKind", "ProcessPool"]

log = logging.getLogger(__name__)

# Bound on the bytes left unread in the pipe of a busy child: a write beyond its socket buffer
# would block the driver until the job that child runs ends. Each message written ahead is at
# most _AHEAD_BYTES // depth; a job too big for that waits (in order) for an idle child.
_AHEAD_BYTES = 1 << 17
# A child that dies idle before finishing any job (a failing initializer, say) is replaced
# after a delay doubling from the base up to the max, rather than in a hot loop.
_RESPAWN_BASE_S, _RESPAWN_MAX_S = 0.05, 2.0
# How long shutdown waits for the forkserver to report a SIGKILLed child.
_JOIN_S = 5.0

_Entry = tuple["Job", list[fdio.Part]]  # a job and its packed payload


class OutcomeKind(StrEnum):
    DONE = "done"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # stopped while it ran (kill_task)


@dataclass(frozen=True, slots=True)
class Job:
    task_id: str
    payload: Any  # picklable (pickle.PickleBuffer parts go uncopied); runner(payload) gets it
    timeout: float | None = None  # hard limit in seconds for this job's run


@dataclass(frozen=True, slots=True)
class Outcome:
    task_id: str
    kind: OutcomeKind
    value: Any = None  # the runner's return value when DONE
    detail: str = ""  # how it ended when CRASHED or TIMED_OUT
    duration: float = 0.0  # seconds the job ran (best estimate)


# -------------------------------------------------------------------------- owner side


class ProcessPool:
    """``procs`` processes running ``runner(payload)``; see the module docstring."""

    def __init__(self, procs: int, runner: Callable[[Any], Any], *, depth: int = CHILD_DEPTH,
                 max_tasks_per_child: int | None = None, max_memory_mb: float | None = None,
                 initializer: Callable[[], None] | None = None) -> None:
        if procs < 1 or not 1 <= depth < RING:
            raise ValueError(f"procs must be at least 1 and depth 1 to {RING - 1}")
        self._procs, self._runner, self._depth = procs, runner, depth
        self._max_tasks = max_tasks_per_child
        self._max_rss = None if max_memory_mb is None else max_memory_mb * 2**20
        self._initializer = initializer
        self._ctx = multiprocessing.get_context("forkserver")
        # Shared with the callers' threads, under _cond.
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Entry] = deque()
        self._outcomes: deque[Outcome] = deque()
        self._started_out: list[str] = []  # jobs that began running, not yet taken
        self._in_flight = 0
        self._assigned = 0  # taken from pending, neither resolved nor put back yet
        self._want_wake = False  # the driver has room and waits for jobs
        self._woken = self._draining = self._closed = self._started = False
        self._error: BaseException | None = None
        # Children's state: changed under _io only (by the driver, or by a submitting thread
        # dispatching in its place); other threads only read it.
        self._children: list[Child] = []  # replaced, never mutated: safe to iterate
        self._dying: list[Child] = []  # retired or killed, sentinel not seen yet
        self._watch: dict[object, Child] = {}  # conn or sentinel -> child
        self._batch: list[Outcome] = []
        self._requeue: list[_Entry] = []
        self._begun: list[str] = []  # jobs that began this round
        self._claims: dict[Child, Claims] = {}
        self._slots: dict[Child, ProgressSlot] = {}
        self._dropped: set[str] = set()  # cancelled while written ahead to a child
        self._skipped = 0  # this round's answers of children for dropped jobs
        self._idle_deaths, self._respawn_at, self._closing = 0, 0.0, False
        self._shutdown_lock = threading.Lock()
        # Held by the driver while it handles children (not while it waits on them), and by
        # a submitting thread that dispatches in its place.
        self._io = threading.Lock()
        self._thread = threading.Thread(target=self._drive, name="taskq-pool", daemon=True)

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start the children and the driver thread."""
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        modules = ["__main__", __name__, child_main.__module__]
        if getattr(self._runner, "__module__", "__main__") != "__main__":
            modules.append(self._runner.__module__)
        self._ctx.set_forkserver_preload(modules)  # no effect once the forkserver runs
        self._dog_r, self._dog_w = self._ctx.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        atexit.register(self.kill)
        for _ in range(self._procs):
            self._children.append(self._spawn())
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; thread-safe; blocks at most while writing it to an idle child. The
        payload is pickled here (an error is raised here); RuntimeError once stopped."""
        parts = fdio.pack(job.payload)
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

    def get_outcomes(self, timeout: float, starts_wake: bool = True) -> list[Outcome]:
        """Every outcome available, waiting up to ``timeout`` s for one (or, with
        ``starts_wake``, for a job to begin: see take_started); [] on timeout/wake."""
        def ready() -> object:
            return self._outcomes or self._woken or self._error or (
                starts_wake and self._started_out)

        with self._cond:
            if not ready():
                self._cond.wait_for(ready, timeout)
            self._woken = False
            if self._error is not None and not self._outcomes:
                raise RuntimeError("pool driver failed") from self._error
            out = list(self._outcomes)
            self._outcomes.clear()
            self._in_flight -= len(out)
            return out

    def take_started(self) -> list[str]:
        """Jobs that began running since the last call (get_outcomes returns when there are)."""
        with self._cond:
            started, self._started_out = self._started_out, []
            return started

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

    def wake(self) -> None:
        """Make a blocked (or the next) get_outcomes return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def in_flight(self) -> int:
        """Jobs submitted whose outcome get_outcomes has not returned yet."""
        return self._in_flight

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

    # ------------------------------------------------------------------ driver thread

    def _drive(self) -> None:
        try:
            while not self._closing:
                with self._io:
                    self._fill()
                    self._dispatch()
                    watched: list[Any] = [self._wake_r, *self._watch]
                    timeout = self._wait_timeout()
                ready = wait(watched, timeout)
                with self._io:
                    now = time.monotonic()
                    for obj in ready:
                        self._on_ready(obj, now)
                    self._expire(now)
                    self._publish()
        except BaseException as exc:
            log.exception("taskq pool driver failed")
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _on_ready(self, obj: object, now: float) -> None:
        if obj == self._wake_r:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            return
        child = self._watch.get(obj)
        if child is None:  # released earlier in this round
            return
        if obj is not child.conn:
            self._reap(child, now)
        elif not self._pull(child, now):
            del self._watch[child.conn]  # dead; its sentinel will say how it ended
        elif not child.fifo and not child.accepting:
            self._detach(child, retire=True)

    def _wait_timeout(self) -> float | None:
        deadline = None
        for child in self._children:
            if child.fifo and child.fifo[0][0].timeout is not None:
                end = child.head_start + child.fifo[0][0].timeout
                deadline = end if deadline is None else min(deadline, end)
        if len(self._children) < self._procs and not self._draining:
            deadline = self._respawn_at if deadline is None else min(deadline, self._respawn_at)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _spawn(self) -> Child:
        parent, child_end = self._ctx.Pipe()
        claims, slot = Claims(self._ctx), ProgressSlot(self._ctx)
        args = (child_end, self._dog_r, self._runner, self._initializer, self._max_rss is not None,
                claims, slot)
        proc = self._ctx.Process(target=child_main, args=args, name="taskq-pool-child")
        try:
            proc.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child_end.close()
        child = Child(proc, parent, parent.fileno(), proc.sentinel)
        self._claims[child] = claims
        self._slots[child] = slot
        self._watch[parent] = self._watch[child.sentinel] = child
        return child

    def _fill(self) -> None:
        """Bring the pool back to ``procs`` children after crashes and retirements."""
        if len(self._children) >= self._procs or self._draining:
            return
        if time.monotonic() < self._respawn_at:
            return
        try:
            while len(self._children) < self._procs:
                self._children = [*self._children, self._spawn()]
        except Exception:
            log.exception("taskq pool could not start a process; retrying")
            self._note_idle_death()

    def _note_idle_death(self) -> None:
        self._idle_deaths += 1
        delay = min(_RESPAWN_BASE_S * 2 ** (self._idle_deaths - 1), _RESPAWN_MAX_S)
        self._respawn_at = time.monotonic() + delay

    def _rooms(self) -> list[tuple[int, int, int, int | None]]:
        """(load, index, room, bytes it may be written ahead) of each child taking jobs."""
        depth, cap, ahead = self._depth, self._max_tasks, _AHEAD_BYTES // self._depth
        rooms = []
        for index, child in enumerate(self._children):
            if child.accepting and child.readable:
                load = len(child.fifo)
                room = depth - load if cap is None else min(depth - load, cap - child.assigned)
                if room > 0:
                    rooms.append((load, index, room, ahead if load else None))
        return rooms

    def _dispatch(self) -> None:
        """Write pending jobs to the children with room, least loaded first, in order."""
        heap = self._rooms()
        if not heap:
            self._want_wake = False
            return
        heapq.heapify(heap)
        batches: dict[int, list[_Entry]] = {}
        with self._cond:
            pending = self._pending if not self._draining else deque()
            while heap and pending:
                load, index, room, budget = heapq.heappop(heap)
                size = fdio.packed_size(pending[0][1])
                if budget is not None:
                    if size > budget:
                        continue  # busy child: only a message its pipe surely holds
                    budget -= size
                batches.setdefault(index, []).append(pending.popleft())
                if room > 1:
                    heapq.heappush(heap, (load + 1, index, room - 1, budget))
            self._assigned += sum(map(len, batches.values()))
            self._want_wake = bool(heap) and not self._draining
        for index, batch in batches.items():
            self._write(self._children[index], batch)

    def _write(self, child: Child, batch: list[_Entry]) -> None:
        first = not child.fifo
        if first:
            child.head_start = time.monotonic()
        child.fifo.extend(batch)
        child.assigned += len(batch)
        if self._max_tasks is not None and child.assigned >= self._max_tasks:
            child.accepting = False
        try:
            child.write([part for _, parts in batch for part in parts])
        except OSError:  # dead already: these never started; its sentinel says how it ended
            child.accepting = False
            for _ in batch:
                child.fifo.pop()
            self._requeue.extend(batch)
            return
        if first:
            self._begun.append(batch[0][0].task_id)

    def _pull(self, child: Child, now: float) -> bool:
        """One read of what the child sent, and every result in it; False at EOF."""
        results = child.receive()
        for data in results or ():
            self._on_result(child, data, now)
        return results is not None

    def _on_result(self, child: Child, data: memoryview, now: float) -> None:
        job, _ = child.fifo.popleft()
        duration, child.head_start = now - child.head_start, now
        child.completed += 1
        if child.fifo and child.fifo[0][0].task_id not in self._dropped:
            self._begun.append(child.fifo[0][0].task_id)
        try:
            status, value, rss = pickle.loads(data)  # noqa: S301 -- a reply of this worker's own pool process, over a private pipe
        except Exception as exc:
            status, rss = RAISED, 0
            value = f"result could not be unpickled: {type(exc).__name__}: {exc}"
        if status == SKIPPED:
            self._dropped.discard(job.task_id)
            self._skipped += 1
        elif status == OK:
            self._batch.append(Outcome(job.task_id, OutcomeKind.DONE, value, "", duration))
        else:
            self._batch.append(Outcome(job.task_id, OutcomeKind.CRASHED, None, value, duration))
        if self._max_rss is not None and rss > self._max_rss:
            child.accepting = False

    def _drain(self, child: Child, now: float) -> None:
        """Handle every result a dead or dying child left in its pipe."""
        while child.readable and child.fifo and child.conn.poll(0) and self._pull(child, now):
            pass

    def _detach(self, child: Child, retire: bool = False) -> None:
        """Take a child out of service (telling it to exit if it is to retire); its sentinel
        stays watched until it fires, and _fill starts a replacement."""
        if retire:
            with contextlib.suppress(OSError):
                child.conn.send_bytes(b"")
        child.accepting = False
        self._children = [c for c in self._children if c is not child]
        self._dying.append(child)
        self._watch.pop(child.conn, None)

    def _lose_head(self, child: Child, kind: OutcomeKind, detail: str, now: float) -> None:
        """The child's running job ended badly; the jobs behind it never started: they are
        dispatched again."""
        job, _ = child.fifo.popleft()
        self._batch.append(Outcome(job.task_id, kind, None, detail, now - child.head_start))
        self._requeue.extend(self._undropped(child))
        child.fifo.clear()

    def _undropped(self, child: Child) -> list[_Entry]:
        """The jobs behind a dead child's head, but those dropped (they never run)."""
        rest = [e for e in child.fifo if e[0].task_id not in self._dropped]
        self._skipped += len(child.fifo) - len(rest)
        self._dropped.difference_update(e[0].task_id for e in child.fifo)
        return rest

    def _reap(self, child: Child, now: float) -> None:
        """The child's sentinel fired: account for its jobs, then release it."""
        self._drain(child, now)
        child.proc.join(_JOIN_S)
        if child.completed:
            self._idle_deaths = 0
        if child in self._dying:
            self._dying.remove(child)
        else:
            self._children = [c for c in self._children if c is not child]
            if child.fifo:
                detail = exit_detail(child.proc.exitcode, child.oom_kills)
                self._lose_head(child, OutcomeKind.CRASHED, detail, now)
            elif not child.completed:
                self._note_idle_death()
        self._release(child)

    def _release(self, child: Child) -> None:
        self._claims.pop(child, None)
        self._slots.pop(child, None)
        self._watch.pop(child.conn, None)
        self._watch.pop(child.sentinel, None)
        child.conn.close()
        if child.proc.exitcode is not None:
            child.proc.close()

    def _expire(self, now: float) -> None:
        """Kill each child whose running job is past its timeout."""
        for child in self._children:
            job = child.fifo[0][0] if child.fifo else None
            if job is None or job.timeout is None or now < child.head_start + job.timeout:
                continue
            self._drain(child, now)  # it may have answered just in time
            if not child.fifo or child.fifo[0][0] is not job:
                continue
            child.proc.kill()
            detail = f"ran past its {job.timeout:g} s timeout; its process was killed"
            self._lose_head(child, OutcomeKind.TIMED_OUT, detail, now)
            self._detach(child)

    def _publish(self) -> None:
        """Hand this round's outcomes to get_outcomes; put never-started jobs back first."""
        self._publish_started()
        if not (self._batch or self._requeue or self._skipped):
            return
        batch, requeue, skipped = self._batch, self._requeue, self._skipped
        self._batch, self._requeue, self._skipped = [], [], 0
        with self._cond:
            self._outcomes.extend(batch)
            self._pending.extendleft(reversed(requeue))
            self._assigned -= len(batch) + len(requeue) + skipped
            self._cond.notify_all()

    def _publish_started(self) -> None:
        if self._begun:
            with self._cond:
                self._started_out += self._begun
                self._cond.notify_all()
            self._begun = []

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

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

    def _kill_children(self) -> list[Job]:
        """SIGKILL every child; results already sent still count; return the rest."""
        everyone = [*self._children, *self._dying]
        for child in everyone:
            if child.proc.exitcode is None:
                child.proc.kill()
        unfinished: list[Job] = []
        now = time.monotonic()
        for child in everyone:
            child.proc.join(_JOIN_S)
            self._drain(child, now)
            unfinished.extend(job for job, _ in self._undropped(child))
            child.fifo.clear()
            self._release(child)
        self._children, self._dying = [], []
        self._publish()
        return unfinished
