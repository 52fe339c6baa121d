"""What the thread and asyncio pools share: the bookkeeping of jobs run inside the worker's
own process, behind the interface the worker uses for ``taskq.worker.pools.process.ProcessPool``.

    submit() ──► pending ──► begin(): a slot taken, the job active ──► finish(outcome)
        ▲            │                 │                                    │
    take_back() ◄────┘ cancel()     expire() at its timeout: TIMED_OUT       ▼
                                    now, kill_task(): CANCELLED now;  ──► get_outcomes()
                                    its slot stays taken until the
                                    code running it returns
    report_progress in a job ──► the latest value per job ──► progress() (each heartbeat)
    a job waits on other tasks ──► secede(): its slot is free meanwhile ── rejoin()

Every submitted job ends exactly one way: an Outcome from get_outcomes, or the Job itself
handed back by take_back, cancel or stop. One lock guards it all; the subclasses
(``taskq.worker.pools.threads``, ``taskq.worker.pools.asyncio``) only decide where a begun job runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from taskq.protocol import nesting
from taskq.protocol.progress import Progress
from taskq.worker import report, setup
from taskq.worker.pools.job import Job, Outcome, OutcomeKind, OutcomeQueue


class LocalPool(OutcomeQueue):
    """Up to ``size`` jobs at once, run in this process; see the module docstring."""

    def __init__(self, size: int, runner: Callable[[Any], Any],
                 setup: tuple[str, ...] = ()) -> None:
        if size < 1:
            raise ValueError(f"concurrency must be at least 1, not {size}")
        self._size, self._runner = size, runner
        self._setup = setup  # ``--setup`` hooks, run once as the pool starts
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # outcomes, starts, wakes
        self._work = threading.Condition(self._lock)  # jobs to begin, slots freed
        self._pending: deque[Job] = deque()
        self._outcomes: deque[Outcome] = deque()
        self._started_out: list[str] = []
        self._active: dict[str, tuple[Job, float]] = {}  # begun, no outcome yet
        self._in_flight = 0
        self._busy = 0  # slots taken: active jobs and timed-out ones still running
        self._seceded = 0  # running jobs that gave up their slot while they wait
        self._woken = self._draining = self._closed = False
        self._progress: dict[str, Progress] = {}  # changed since the last progress()

    # ------------------------------------------------------------------ the worker's API

    def start(self) -> None:
        """Run the setup hooks (in this process: SetupError if one fails), then start
        whatever runs the jobs; their progress comes to this pool, and a job that
        waits on other tasks gives up its slot meanwhile (``secede``, ``rejoin``)."""
        setup.run(self._setup)
        self._hook_in()

    def _hook_in(self) -> None:
        """Jobs' progress comes to this pool, and a job that waits on other tasks gives up
        its slot meanwhile (``taskq.protocol.nesting``)."""
        report.set_sink(self._note_progress)
        nesting.set_slot_hooks(self.secede, self.rejoin)

    def secede(self) -> None:
        """A running job waits on other tasks: one more job may begin meanwhile."""
        with self._lock:
            self._busy -= 1
            self._seceded += 1
            self._work.notify()
        self._on_submit()
        self.wake()  # the worker leases for the slot lent out

    def rejoin(self) -> None:
        """It runs again: its slot is taken back (at once; a job begun meanwhile goes on,
        and no other begins until the pool is under its size again)."""
        with self._lock:
            self._busy += 1
            self._seceded -= 1

    def seceded(self) -> int:
        """Running jobs that gave up their slot while they wait."""
        return self._seceded

    def submit(self, job: Job) -> None:
        """Queue a job; thread-safe; RuntimeError once stopped."""
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is stopped")
            self._pending.append(job)
            self._in_flight += 1
            self._work.notify()
        self._on_submit()

    def cancel(self, task_id: str) -> bool:
        """Make sure a job never begins: True if it had not, and now never will."""
        with self._lock:
            for job in self._pending:
                if job.task_id == task_id:
                    self._pending.remove(job)
                    self._in_flight -= 1
                    return True
        return False

    def kill_task(self, task_id: str) -> bool:
        """Stop a job while it runs: CANCELLED at once. A thread cannot be killed: its slot
        stays busy until its code returns (the asyncio pool cancels a coroutine). False if
        it does not run (not begun: see ``cancel``; or it ended)."""
        with self._lock:
            begun = self._active.get(task_id)
        if begun is None or not self._expire(begun[0], "cancelled while it ran",
                                             OutcomeKind.CANCELLED):
            return False
        self._interrupt(begun[0])
        return True

    def progress(self) -> dict[str, Progress]:
        """The running jobs' progress that changed since the last call."""
        with self._lock:
            changed, self._progress = self._progress, {}
            return {t: p for t, p in changed.items() if t in self._active}

    def _note_progress(self, task_id: str, progress: Progress) -> None:
        """A job reported (in any thread): keep only its latest value."""
        self._progress[task_id] = progress  # one store; progress() swaps the dict

    def running(self) -> int:
        """Slots taken: jobs running, and timed-out ones whose code has not returned."""
        return self._busy

    def pids(self) -> list[int]:
        """No process of its own: the tasks run in the worker's."""
        return []

    def take_back(self) -> list[Job]:
        """Remove and return the jobs not begun."""
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
            self._in_flight -= len(jobs)
            return jobs

    def stop(self, grace: float) -> list[Job]:
        """Begin nothing new, let running jobs finish for up to ``grace`` s, then give up on
        them; return every job that did not end."""
        with self._cond:
            self._draining = True
            self._cond.wait_for(lambda: not self._active or self._closed, grace)
        return self._close()

    def kill(self) -> None:
        """Give up on every job at once; idempotent."""
        self._close()

    # ------------------------------------------------------------------ for the subclasses

    def _on_submit(self) -> None:
        """A job was queued (called outside the lock)."""

    def _interrupt(self, job: Job) -> None:
        """A running job was cancelled: stop its code if that can be (outside the lock)."""

    def _shutdown(self) -> None:
        """Release what runs the jobs (called once, outside the lock)."""

    def _begin(self) -> Job | None:
        """Under the lock: the next job to run, its slot taken; None if none may begin."""
        if not self._pending or self._draining or self._busy >= self._size:
            return None
        job = self._pending.popleft()
        self._busy += 1
        self._active[job.task_id] = (job, time.monotonic())
        self._started_out.append(job.task_id)
        self._cond.notify_all()
        return job

    def _finish(self, job: Job, value: Any) -> None:
        """The code running a job returned ``value`` (the runner's): its slot is free, and
        the job is DONE unless it timed out or the pool gave up on it meanwhile."""
        with self._lock:
            self._busy -= 1
            self._work.notify()
            begun = self._active.pop(job.task_id, None)
            if begun is None or self._closed:
                return
            self._outcomes.append(Outcome(job.task_id, OutcomeKind.DONE, value, "",
                                          time.monotonic() - begun[1]))
            self._cond.notify_all()

    def _expire(self, job: Job, detail: str,
                kind: OutcomeKind = OutcomeKind.TIMED_OUT) -> bool:
        """A job ran past its timeout (or was cancelled): TIMED_OUT (or ``kind``) now; its
        slot is freed by _finish."""
        with self._lock:
            begun = self._active.get(job.task_id)
            if begun is None or begun[0] is not job or self._closed:
                return False
            del self._active[job.task_id]
            self._outcomes.append(Outcome(job.task_id, kind, None, detail,
                                          time.monotonic() - begun[1]))
            self._cond.notify_all()
            return True

    def _close(self) -> list[Job]:
        with self._lock:
            if self._closed:
                return []
            self._closed = self._draining = True
            unfinished = [job for job, _ in self._active.values()] + list(self._pending)
            self._active.clear()
            self._pending.clear()
            self._in_flight -= len(unfinished)
            self._cond.notify_all()
            self._work.notify_all()
        self._shutdown()
        return unfinished
