"""The process pool's driver: its state, and the thread that moves jobs to its children and
turns what each child does into outcomes. ``process.ProcessPool`` is built on it and adds
the callers' side (submit, cancel, kill_task, stop).

    one round of the driver thread:
        _fill (replace dead or retired children) ─► _dispatch (pending jobs ─► children with
        room, least loaded first) ─► wait() on pipes, sentinels, wake ─► _on_ready: results
        (_pull), deaths (_reap) ─► _expire (timeouts) ─► _publish (outcomes, jobs put back)

State shared with the callers' threads is under ``_cond``; the children's state changes
under ``_io`` only (held by the driver while it handles children, or by a submitting thread
dispatching in its place).
"""

from __future__ import annotations

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
from multiprocessing.connection import Connection, wait
from typing import Any

from taskq.defaults import CHILD_DEPTH
from taskq.protocol import frames
from taskq.worker.pools.child import OK, RAISED, READY, REJOIN, SECEDE, SKIPPED, child_main
from taskq.worker.pools.child_record import Child, exit_detail
from taskq.worker.pools.claims import RING, Claims
from taskq.worker.pools.job import Job, Outcome, OutcomeKind, OutcomeQueue
from taskq.worker.pools.progress_slot import ProgressSlot
from taskq.worker.pools.seceding import Seceding

log = logging.getLogger(__name__)  # the process pool's one logger, for all its modules

# Bound on the bytes left unread in the pipe of a busy child: a write beyond its socket buffer
# would block the driver until the job that child runs ends. Each message written ahead is at
# most _AHEAD_BYTES // depth; a job too big for that waits (in order) for an idle child.
_AHEAD_BYTES = 1 << 17
# A child that dies idle before finishing any job (a failing initializer, say) is replaced
# after a delay doubling from the base up to the max, rather than in a hot loop.
_RESPAWN_BASE_S, _RESPAWN_MAX_S = 0.05, 2.0
# How long shutdown waits for the forkserver to report a SIGKILLed child.
_JOIN_S = 5.0

_Queued = tuple[Job, list[frames.Part]]  # a job and its packed payload


class PoolDriver(Seceding, OutcomeQueue):
    """The state of a process pool and its driver thread; see the module docstring."""

    # Opened by ``start``: the children's watchdog pipe and the driver's wake-up pipe.
    _dog_r: Connection
    _dog_w: Connection
    _wake_r: int
    _wake_w: int

    def __init__(self, procs: int, runner: Callable[[Any], Any], *, depth: int = CHILD_DEPTH,
                 max_tasks_per_child: int | None = None, max_memory_mb: float | None = None,
                 initializer: Callable[[], None] | None = None,
                 wait_ready: bool = False) -> None:
        if procs < 1 or not 1 <= depth < RING:
            raise ValueError(f"procs must be at least 1 and depth 1 to {RING - 1}")
        self._procs, self._runner, self._depth = procs, runner, depth
        self._extra = 0  # processes added while tasks wait on others (``seceding``)
        self._max_tasks = max_tasks_per_child
        self._max_rss = None if max_memory_mb is None else max_memory_mb * 2**20
        self._initializer = initializer
        self._wait_ready = wait_ready  # start() returns once every child's initializer ran
        self._ctx = multiprocessing.get_context("forkserver")
        # Shared with the callers' threads, under _cond.
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Queued] = deque()
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
        self._requeue: list[_Queued] = []
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

    def _failure(self) -> BaseException | None:
        return self._error  # the driver thread died: callers get it from get_outcomes

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
        if len(self._children) < self._size() and not self._draining:
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
        if len(self._children) >= self._size() or self._draining:
            return
        if time.monotonic() < self._respawn_at:
            return
        try:
            while len(self._children) < self._size():
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
            if child.accepting and child.readable and not child.seceded:
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
        batches: dict[int, list[_Queued]] = {}
        with self._cond:
            pending = self._pending if not self._draining else deque()
            while heap and pending:
                load, index, room, budget = heapq.heappop(heap)
                size = frames.packed_size(pending[0][1])
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

    def _write(self, child: Child, batch: list[_Queued]) -> None:
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
        if first and child.ready:
            self._begun.append(batch[0][0].task_id)

    def _pull(self, child: Child, now: float) -> bool:
        """One read of what the child sent, and every result in it; False at EOF."""
        results = child.receive()
        for data in results or ():
            self._on_result(child, data, now)
        return results is not None

    def _on_result(self, child: Child, data: memoryview, now: float) -> None:
        try:
            status, value, rss = pickle.loads(data)  # noqa: S301 -- a reply of this worker's own pool process, over a private pipe
        except Exception as exc:
            status, rss = RAISED, 0
            value = f"result could not be unpickled: {type(exc).__name__}: {exc}"
        if not child.ready:  # its first word: its initializer ran, or why it failed
            self._on_set_up(child, status, value, now)
            return
        if status in (SECEDE, REJOIN):  # not an answer: its task waits, or not
            self._on_notice(child, status == SECEDE)
            return
        job, _ = child.fifo.popleft()
        duration, child.head_start = now - child.head_start, now
        child.completed += 1
        if child.seceded:  # its task ended without a word of taking its slot back
            self._on_notice(child, False)
        if child.fifo and child.fifo[0][0].task_id not in self._dropped:
            self._begun.append(child.fifo[0][0].task_id)
        if status == SKIPPED:
            self._dropped.discard(job.task_id)
            self._skipped += 1
        elif status == OK:
            self._batch.append(Outcome(job.task_id, OutcomeKind.DONE, value, "", duration))
        else:
            self._batch.append(Outcome(job.task_id, OutcomeKind.CRASHED, None, value, duration))
        if self._max_rss is not None and rss > self._max_rss:
            child.accepting = False

    def _on_set_up(self, child: Child, status: int, value: object, now: float) -> None:
        if status == READY:
            child.ready, child.head_start = True, now  # a job's time starts now
            if child.fifo:
                self._begun.append(child.fifo[0][0].task_id)
        else:
            child.setup_error = str(value)

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
        if child.seceded:  # it goes, and the slot it lent out with it
            child.seceded = False
            self._extra -= 1

    def _undropped(self, child: Child) -> list[_Queued]:
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
            if not child.ready:  # its setup failed: none of its jobs began, they go again
                log.error("taskq pool process setup failed: %s", child.setup_error or
                          exit_detail(child.proc.exitcode, child.oom_kills))
                self._requeue.extend(self._undropped(child))
                child.fifo.clear()
                self._note_idle_death()
            elif child.fifo:
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
