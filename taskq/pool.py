"""The worker's local pool of processes: runs jobs and tells exactly how each one ended.

The pool owns its child processes, the pipes to them and one driver thread. It knows nothing
about tasks: a job is an opaque picklable payload handed to ``runner(payload)`` in a child,
and every job submitted ends in exactly one of three ways: an Outcome (DONE, CRASHED or
TIMED_OUT) returned by get_outcomes, a Job handed back by take_back, or a Job handed back
by stop as unfinished.

    submit() --> pending deque --+                       +--> child 1: runner(payload)
                                 |   driver thread       |      (up to `depth` queued)
    take_back() <----------------+-- wait() on conns, ---+--> child 2 ...
                                 |   sentinels, wake     |
    get_outcomes() <-- outcomes deque <-- results, crashes, timeouts

Each child reads lists of payloads from its own Pipe and answers every job, in order, with
one pickled ``(status, value, rss)`` tuple. The driver keeps each child's FIFO of written
jobs, so the head of the FIFO is the job the child is running: when the child's sentinel
fires, the head crashed and the jobs behind it were never started (they are dispatched
again); when the head runs past its timeout the child is killed the same way. A head job
is taken to start when the previous result of that child arrives (or when it is written
to an idle child).

Children come from the "forkserver" context, since the owning worker runs threads. Each
child has a watchdog thread blocked on a pipe whose write end only the owner holds: when
the owner dies, even by SIGKILL, the read sees EOF and the child exits at once.
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import logging
import multiprocessing
import os
import pickle
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from taskq.defaults import CHILD_DEPTH

__all__ = ["Job", "Outcome", "OutcomeKind", "ProcessPool"]

log = logging.getLogger(__name__)

_OK = 0
_RAISED = 1
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# A child that dies idle before finishing any job (a failing initializer, say) is replaced
# after a delay that doubles from this, up to _RESPAWN_MAX_S, rather than in a hot loop.
_RESPAWN_BASE_S = 0.05
_RESPAWN_MAX_S = 2.0
# Bytes asked of one read from a child; up to _BIG_CHUNK while a large result arrives.
_CHUNK = 1 << 16
_BIG_CHUNK = 1 << 22
_unpack_int = struct.Struct("!i").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from
# How long shutdown waits for the forkserver to report a SIGKILLed child.
_JOIN_S = 5.0


class OutcomeKind(str, Enum):  # noqa: UP042 -- the declared interface
    DONE = "done"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class Job:
    task_id: str
    payload: Any
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    task_id: str
    kind: OutcomeKind
    value: Any = None
    detail: str = ""
    duration: float = 0.0


# --------------------------------------------------------------------------- child side


def _watch_owner(fd: int) -> None:
    """Exit the child as soon as the owner's end of the watchdog pipe is gone."""
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    os._exit(1)


def _rss(page: int) -> int:
    """Resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * page
    except (OSError, ValueError, IndexError):
        return 0


def _run_one(runner: Callable[[Any], Any], payload: Any, page: int) -> bytes:
    try:
        status, value = _OK, runner(payload)
    except BaseException as exc:
        status, value = _RAISED, f"runner raised {type(exc).__name__}: {exc}"
    rss = _rss(page) if page else 0
    try:
        return pickle.dumps((status, value, rss), _PROTOCOL)
    except Exception as exc:
        detail = f"result could not be pickled: {type(exc).__name__}: {exc}"
        return pickle.dumps((_RAISED, detail, rss), _PROTOCOL)


def _child_main(
    conn: Connection,
    watchdog: Connection,
    runner: Callable[[Any], Any],
    initializer: Callable[[], None] | None,
    measure: bool,
) -> None:
    """Body of a pool process: run each payload it is sent, answer each in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_owner, args=(watchdog.fileno(),), daemon=True).start()
    if initializer is not None:
        initializer()
    page = os.sysconf("SC_PAGE_SIZE") if measure else 0
    recv, send, loads = conn.recv_bytes, conn.send_bytes, pickle.loads
    while True:
        try:
            batch = loads(recv())
        except EOFError:
            return
        if batch is None:
            return
        for payload in batch:
            send(_run_one(runner, payload, page))


# -------------------------------------------------------------------------- owner side


@dataclass(eq=False, slots=True)
class _Child:
    proc: BaseProcess
    conn: Connection
    sentinel: int
    fifo: deque[Job] = field(default_factory=deque)
    head_start: float = 0.0  # when the head of the FIFO started running
    assigned: int = 0  # jobs ever written to this child
    completed: int = 0
    accepting: bool = True
    readable: bool = True  # False once its conn hit EOF
    buf: bytearray = field(default_factory=bytearray)  # a partly received result
    need: int = 0  # bytes still missing from the partly received result

    @property
    def fd(self) -> int:
        return self.conn.fileno()


def _exit_detail(exitcode: int | None) -> str:
    if exitcode is None:
        return "process ended"
    if exitcode >= 0:
        return f"process exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = str(-exitcode)
    hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
    return f"process killed by signal {name}{hint}"


class ProcessPool:
    """A fixed number of processes running ``runner(payload)``; see the module docstring."""

    def __init__(
        self,
        procs: int,
        runner: Callable[[Any], Any],
        *,
        depth: int = CHILD_DEPTH,
        max_tasks_per_child: int | None = None,
        max_memory_mb: float | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        if procs < 1 or depth < 1:
            raise ValueError("procs and depth must be at least 1")
        self._procs, self._runner, self._depth = procs, runner, depth
        self._max_tasks = max_tasks_per_child
        self._max_rss = None if max_memory_mb is None else max_memory_mb * 2**20
        self._initializer = initializer
        self._ctx = multiprocessing.get_context("forkserver")
        # Shared with other threads, guarded by _cond.
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[Job] = deque()
        self._outcomes: deque[Outcome] = deque()
        self._in_flight = 0
        self._assigned = 0  # jobs taken from _pending and not yet resolved or put back
        self._want_wake = False
        self._woken = False
        self._draining = False
        self._error: BaseException | None = None
        # Driver state; other threads only read it.
        self._children: list[_Child] = []
        self._dying: list[_Child] = []
        self._batch: list[Outcome] = []
        self._requeue: list[Job] = []
        self._watch: dict[object, _Child] = {}
        self._idle_deaths = 0
        self._respawn_at = 0.0
        self._closing = False
        self._closed = False
        self._started = False
        self._shutdown_lock = threading.Lock()
        self._thread = threading.Thread(target=self._drive, name="taskq-pool", daemon=True)

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start the children and the driver thread."""
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        modules = ["__main__", __name__]
        if getattr(self._runner, "__module__", "__main__") != "__main__":
            modules.append(self._runner.__module__)
        self._ctx.set_forkserver_preload(modules)
        self._dog_r, self._dog_w = self._ctx.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for _ in range(self._procs):
            self._children.append(self._spawn())
        atexit.register(self.kill)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; thread-safe and never blocks."""
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is stopped")
            self._pending.append(job)
            self._in_flight += 1
            poke, self._want_wake = self._want_wake, False
        if poke:
            self._poke()

    def get_outcomes(self, timeout: float) -> list[Outcome]:
        """Every outcome available, waiting up to ``timeout`` s for one; [] on timeout/wake."""
        with self._cond:
            if not (self._outcomes or self._woken or self._error):
                self._cond.wait_for(self._has_news, timeout)
            self._woken = False
            if self._error is not None and not self._outcomes:
                raise RuntimeError("pool driver failed") from self._error
            out = list(self._outcomes)
            self._outcomes.clear()
            self._in_flight -= len(out)
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

    def take_back(self) -> list[Job]:
        """Remove and return the jobs not yet written to any child."""
        with self._cond:
            jobs = list(self._pending)
            self._pending.clear()
            self._in_flight -= len(jobs)
            return jobs

    def stop(self, grace: float) -> list[Job]:
        """Let written jobs finish for up to ``grace`` s, then kill; return what did not end."""
        with self._cond:
            self._draining = True
            self._want_wake = False
            if self._started and not self._closed:
                self._cond.wait_for(self._drained, grace)
        return self._shutdown()

    def kill(self) -> None:
        """SIGKILL every child and join it and the driver; idempotent."""
        self._shutdown()

    # ------------------------------------------------------------------ driver thread

    def _drive(self) -> None:
        try:
            while not self._closing:
                self._fill()
                self._dispatch()
                ready = wait([self._wake_r, *self._watch], self._wait_timeout())
                now = time.monotonic()
                for obj in ready:
                    self._on_ready(obj, now)
                self._expire(time.monotonic())
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
        if child is None:
            return  # already reaped in this round
        if obj is child.conn:
            self._read(child, now)
        else:
            self._reap(child, now)

    def _has_news(self) -> bool:
        return bool(self._outcomes or self._woken or self._error)

    def _drained(self) -> bool:
        return self._assigned == 0 or self._error is not None or self._closed

    def _wait_timeout(self) -> float | None:
        deadline = None
        for child in self._children:
            if child.fifo and child.fifo[0].timeout is not None:
                end = child.head_start + child.fifo[0].timeout
                deadline = end if deadline is None else min(deadline, end)
        if len(self._children) < self._procs and not self._draining:
            deadline = self._respawn_at if deadline is None else min(deadline, self._respawn_at)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _spawn(self) -> _Child:
        parent, child_end = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(child_end, self._dog_r, self._runner, self._initializer, bool(self._max_rss)),
            name="taskq-pool-child",
        )
        try:
            proc.start()
        finally:
            child_end.close()
        child = _Child(proc, parent, proc.sentinel)
        self._watch[parent] = self._watch[child.sentinel] = child
        return child

    def _fill(self) -> None:
        """Bring the pool back to ``procs`` children (replacements after crashes, retirements)."""
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

    def _rooms(self) -> list[tuple[int, int, int]]:
        """(load, index, room) of every child that can take more jobs now."""
        depth, cap = self._depth, self._max_tasks
        rooms = []
        for index, child in enumerate(self._children):
            if child.accepting and child.readable:
                load = len(child.fifo)
                room = depth - load if cap is None else min(depth - load, cap - child.assigned)
                if room > 0:
                    rooms.append((load, index, room))
        return rooms

    def _dispatch(self) -> None:
        """Write pending jobs to the children with room, least loaded first."""
        heap = self._rooms()
        total = sum(entry[2] for entry in heap)
        if not total:
            self._want_wake = False
            return
        with self._cond:
            count = 0 if self._draining else min(total, len(self._pending))
            jobs = [self._pending.popleft() for _ in range(count)]
            self._assigned += count
            self._want_wake = count < total and not self._draining
        if not jobs:
            return
        if len(heap) == 1:
            self._write(self._children[heap[0][1]], jobs)
            return
        heapq.heapify(heap)
        batches: dict[int, list[Job]] = {}
        for job in jobs:
            load, index, room = heapq.heappop(heap)
            batches.setdefault(index, []).append(job)
            if room > 1:
                heapq.heappush(heap, (load + 1, index, room - 1))
        for index, batch in batches.items():
            self._write(self._children[index], batch)

    def _write(self, child: _Child, batch: list[Job]) -> None:
        try:
            data = pickle.dumps([job.payload for job in batch], _PROTOCOL)
        except Exception:
            batch = self._drop_unpicklable(batch)
            if not batch:
                return
            data = pickle.dumps([job.payload for job in batch], _PROTOCOL)
        if not child.fifo:
            child.head_start = time.monotonic()
        child.fifo.extend(batch)
        child.assigned += len(batch)
        if self._max_tasks is not None and child.assigned >= self._max_tasks:
            child.accepting = False
        try:
            child.conn.send_bytes(data)
        except OSError:  # the child is dead; its sentinel will say how
            for _ in batch:
                child.fifo.pop()
            self._requeue.extend(batch)
            child.accepting = False

    def _drop_unpicklable(self, batch: list[Job]) -> list[Job]:
        good = []
        for job in batch:
            try:
                pickle.dumps(job.payload, _PROTOCOL)
            except Exception as exc:
                detail = f"payload could not be pickled: {type(exc).__name__}: {exc}"
                self._batch.append(Outcome(job.task_id, OutcomeKind.CRASHED, None, detail))
            else:
                good.append(job)
        return good

    def _read(self, child: _Child, now: float) -> None:
        if not self._pull(child, now):
            self._watch.pop(child.conn, None)  # dead; its sentinel will say how it ended
        elif not child.fifo and not child.accepting:
            self._retire(child)

    def _pull(self, child: _Child, now: float) -> bool:
        """One read of everything the child has sent; handle each whole result in it.

        Results are framed as Connection.send_bytes frames them (a signed 4-byte big-endian
        length, or -1 then an 8-byte length), so one read takes a whole burst of them.
        """
        try:
            data = os.read(child.fd, min(max(_CHUNK, child.need), _BIG_CHUNK))
        except OSError:
            data = b""
        if not data:
            child.readable = False
            return False
        buf = child.buf
        buf += data
        pos, end, size, head = 0, len(buf), 0, 4
        with memoryview(buf) as view:
            while end - pos >= 4:
                (size,), head = _unpack_int(buf, pos), 4
                if size == -1:
                    if end - pos < 12:
                        break
                    (size,), head = _unpack_long(buf, pos + 4), 12
                if end - pos - head < size:
                    break
                self._on_result(child, view[pos + head : pos + head + size], now)
                pos += head + size
        del buf[:pos]
        child.need = size + head - len(buf) if buf else 0
        return True

    def _on_result(self, child: _Child, data: bytes | memoryview, now: float) -> None:
        job = child.fifo.popleft()
        duration = now - child.head_start
        child.head_start = now
        child.completed += 1
        try:
            status, value, rss = pickle.loads(data)
        except Exception as exc:
            status, value, rss = _RAISED, f"result could not be unpickled: {exc!r}", 0
        if status == _OK:
            self._batch.append(Outcome(job.task_id, OutcomeKind.DONE, value, "", duration))
        else:
            self._batch.append(Outcome(job.task_id, OutcomeKind.CRASHED, None, value, duration))
        if self._max_rss is not None and rss > self._max_rss:
            child.accepting = False

    def _drain(self, child: _Child, now: float) -> None:
        """Handle every whole result a (dead or dying) child left in its pipe."""
        while child.readable and child.fifo and child.conn.poll(0) and self._pull(child, now):
            pass

    def _retire(self, child: _Child) -> None:
        """Tell an idle child to exit; a replacement is started by _fill."""
        with contextlib.suppress(OSError):
            child.conn.send_bytes(pickle.dumps(None))
        self._detach(child)

    def _detach(self, child: _Child) -> None:
        """Take a child out of service; it stays watched until its sentinel fires."""
        child.accepting = False
        self._children = [c for c in self._children if c is not child]
        self._dying.append(child)
        self._watch.pop(child.conn, None)

    def _reap(self, child: _Child, now: float) -> None:
        """The child's sentinel fired: account for its jobs, then release it."""
        self._drain(child, now)
        child.proc.join(_JOIN_S)
        if child.completed:
            self._idle_deaths = 0
        if child in self._dying:
            self._dying.remove(child)
        else:
            self._children = [c for c in self._children if c is not child]
            self._account_death(child, now)
        self._release(child)

    def _account_death(self, child: _Child, now: float) -> None:
        """A child died in service: its head job crashed, the ones behind it go back."""
        if not child.fifo:
            if not child.completed:
                self._note_idle_death()
            return
        job = child.fifo.popleft()
        detail = _exit_detail(child.proc.exitcode)
        self._fail(job, OutcomeKind.CRASHED, detail, now - child.head_start)
        self._requeue.extend(child.fifo)
        child.fifo.clear()

    def _fail(self, job: Job, kind: OutcomeKind, detail: str, duration: float) -> None:
        self._batch.append(Outcome(job.task_id, kind, None, detail, duration))

    def _release(self, child: _Child) -> None:
        self._watch.pop(child.conn, None)
        self._watch.pop(child.sentinel, None)
        child.conn.close()
        if child.proc.exitcode is not None:
            child.proc.close()

    def _expire(self, now: float) -> None:
        """Kill the children whose running job is past its timeout."""
        for child in self._children:
            if not child.fifo or child.fifo[0].timeout is None:
                continue
            if now < child.head_start + child.fifo[0].timeout:
                continue
            self._drain(child, now)  # it may have answered just in time
            job = child.fifo[0] if child.fifo else None
            if job is None or job.timeout is None or now < child.head_start + job.timeout:
                continue
            child.proc.kill()
            child.fifo.popleft()
            detail = f"ran past its {job.timeout:g} s timeout; its process was killed"
            self._fail(job, OutcomeKind.TIMED_OUT, detail, now - child.head_start)
            self._requeue.extend(child.fifo)
            child.fifo.clear()
            self._detach(child)

    def _publish(self) -> None:
        """Hand this round's outcomes to get_outcomes and put never-started jobs back."""
        if not (self._batch or self._requeue):
            return
        batch, requeue = self._batch, self._requeue
        self._batch, self._requeue = [], []
        with self._cond:
            self._outcomes.extend(batch)
            self._pending.extendleft(reversed(requeue))
            self._assigned -= len(batch) + len(requeue)
            self._cond.notify_all()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> list[Job]:
        with self._shutdown_lock:
            if self._closed:
                return []
            with self._cond:
                self._closed = True
                self._draining = True
            if not self._started:
                return self.take_back()
            self._closing = True
            self._poke()
            if self._thread is not threading.current_thread():
                self._thread.join()
            unfinished = self._kill_children()
            with self._cond:
                unfinished.extend(self._pending)
                self._pending.clear()
                self._in_flight -= len(unfinished)
                self._assigned = 0
                self._cond.notify_all()
            self._close_fds()
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
            unfinished.extend(child.fifo)
            child.fifo.clear()
            self._release(child)
        self._children, self._dying = [], []
        self._publish()
        return unfinished

    def _close_fds(self) -> None:
        for conn in (self._dog_r, self._dog_w):
            conn.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
