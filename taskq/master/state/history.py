"""Task history: every attempt of every task, as the master saw it, kept for a while.

    lease ──► leased(rec, worker) ──► a live Attempt (worker, host, pid, queued, leased)
    report / expire ──► attempt_ended(rec, result) ──► outcome, classification, traceback
    the task ends ──► task_ended(rec, result) ──► its last attempt is final ──► to the journal
    release (never began) ──► withdraw: the attempt never was
    the reaper ──► prune(now): tasks ended longer than ``keep_s`` ago, and the oldest past
                   ``max_tasks``, leave memory and the journal

Only text and numbers the master already has are kept: never a task's arguments or result
(a failed attempt's traceback is text the worker wrote beside the pickled exception).
Times are wall-clock seconds: ``wall_offset`` is added to the broker's clock. Ended attempts
wait in ``drain()`` for the journal; the broker's state moves them into its ``Changes``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from taskq.defaults import (
    HISTORY_KEEP_S,
    HISTORY_MAX_TASKS,
    LOST_WORKERS_SHOWN_S,
    TRACEBACK_MAX_CHARS,
)
from taskq.master.state.records import TaskRecord, WorkerInfo
from taskq.master.state.stats import CounterKey, Stats
from taskq.protocol.messages import ResultMsg, Status, TaskMsg

RECENT_FAILED = 50  # failed tasks the dashboard lists, newest first

# How an attempt ended, as history, the page and /metrics name it.
OUTCOMES: dict[Status, str] = {
    Status.OK: "ok", Status.ERROR: "raised", Status.CRASHED: "crashed",
    Status.TIMEOUT: "timeout", Status.LOST: "lost", Status.CANCELLED: "cancelled",
    Status.REFUSED: "refused", Status.DEPENDENCY_FAILED: "dependency_failed",
    Status.UNLOADABLE: "unloadable", Status.EXPIRED: "expired",
}


@dataclass(slots=True)
class Attempt:
    """One attempt of a task: handed to ``worker`` (none for a task that ended queued)."""

    task_id: str
    n: int
    job: str
    queue: str
    worker: str = ""
    host: str = ""
    pid: int = 0
    queued: float = 0.0
    leased: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    outcome: str = ""  # "" while it runs
    error_type: str = ""
    detail: str = ""  # the traceback of a raised attempt, else how it ended
    final: bool = False  # the task's last attempt: its outcome is the task's

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class TaskHistory:
    task_id: str
    job: str
    queue: str
    attempts: list[Attempt] = field(default_factory=list)
    ended: float = 0.0
    outcome: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "job": self.job, "queue": self.queue,
                "ended": self.ended, "outcome": self.outcome,
                "attempts": [a.as_dict() for a in self.attempts]}


def job_name(outbox: str) -> str:
    """A job's name as users give it (``job:NAME`` outboxes); other outboxes as they are."""
    return outbox[4:] if outbox.startswith("job:") else outbox


def error_type(status: Status, detail: str) -> str:
    """The exception type of a raised attempt, from its traceback's last line."""
    if status is not Status.ERROR:
        return ""
    last = next((line for line in reversed(detail.splitlines()) if line.strip()), "")
    head = last.split(":", 1)[0].strip()
    return head if head and " " not in head else ""


class History:
    """See the module docstring."""

    def __init__(self, keep_s: float = HISTORY_KEEP_S,
                 max_tasks: int = HISTORY_MAX_TASKS) -> None:
        self.keep_s = keep_s
        self.max_tasks = max_tasks
        self.wall_offset = 0.0
        self.now = 0.0  # the broker clock's latest reading a call brought
        self.tasks: OrderedDict[str, TaskHistory] = OrderedDict()
        self.live: dict[str, Attempt] = {}
        self.stats = Stats()
        self.recent_failed: deque[str] = deque(maxlen=RECENT_FAILED)
        self.lost_workers: OrderedDict[str, tuple[WorkerInfo, float]] = OrderedDict()
        self._written: list[Attempt] = []
        self._gone: list[str] = []

    def wall(self, now: float | None = None) -> float:
        return (self.now if now is None else now) + self.wall_offset

    def submitted(self, queue: str, n: int, now: float) -> None:
        """``n`` tasks were submitted to ``queue``."""
        self.now = now
        self.stats.count(("submitted", queue, ""), self.wall(now), n)

    def leased(self, rec: TaskRecord, worker: WorkerInfo, now: float) -> None:
        self.now = now
        task = self._task(rec)
        queued = rec.queued_at + self.wall_offset if rec.queued_at else 0.0
        attempt = Attempt(rec.msg.task_id, len(task.attempts) + 1, task.job, task.queue,
                          worker.worker_id, worker.host, worker.pid, queued, self.wall(now))
        task.attempts.append(attempt)
        self.live[rec.msg.task_id] = attempt

    def attempt_ended(self, rec: TaskRecord, result: ResultMsg,
                      now: float | None = None) -> Attempt | None:
        """Close the task's live attempt (if any) with ``result``; the task is queued
        again from now (a retry, or a lost worker's task)."""
        if now is not None:
            self.now = now
        attempt = self.live.pop(rec.msg.task_id, None)
        rec.queued_at = self.now
        if attempt is None:
            return None
        attempt.ended = self.wall()
        ran = result.status is not Status.EXPIRED and (  # (a worker did not start it)
            result.duration > 0 or result.status in (Status.OK, Status.ERROR))
        attempt.started = attempt.ended - result.duration if ran else 0.0
        attempt.outcome = OUTCOMES[result.status]
        attempt.detail = result.detail[-TRACEBACK_MAX_CHARS:]
        attempt.error_type = error_type(result.status, result.detail)
        if ran:
            wait = attempt.started - attempt.queued if attempt.queued else None
            self.stats.observe(attempt.queue, None if wait is None else max(0.0, wait),
                               result.duration, attempt.ended)
        self._written.append(attempt)
        return attempt

    def task_ended(self, rec: TaskRecord | None, msg: TaskMsg, result: ResultMsg) -> None:
        """A task's final outcome: its live attempt ends with it (one that never reached a
        worker gets an attempt with no worker, so that it is listed too)."""
        attempt = self.attempt_ended(rec, result) if rec is not None else None
        task = self.tasks.get(msg.task_id)
        if attempt is None:
            if task is None:
                task = self._new_task(msg)
            attempt = Attempt(msg.task_id, len(task.attempts) + 1, task.job, task.queue,
                              ended=self.wall(), outcome=OUTCOMES[result.status],
                              detail=result.detail[-TRACEBACK_MAX_CHARS:])
            task.attempts.append(attempt)
            self._written.append(attempt)
        attempt.final = True
        if task is not None:
            task.ended, task.outcome = attempt.ended, attempt.outcome
            self.tasks.move_to_end(msg.task_id)  # pruned in the order tasks ended
        self.stats.count(("finished", msg.options.queue, attempt.outcome), attempt.ended)
        if attempt.outcome != "ok":
            self.recent_failed.append(msg.task_id)

    def worker_lost(self, worker: WorkerInfo) -> None:
        """A worker was declared lost: listed as such for LOST_WORKERS_SHOWN_S."""
        self.lost_workers[worker.worker_id] = (worker, self.wall())
        self.lost_workers.move_to_end(worker.worker_id)
        cutoff = self.wall() - LOST_WORKERS_SHOWN_S
        while next(iter(self.lost_workers.values()))[1] < cutoff:
            self.lost_workers.popitem(last=False)

    def withdraw(self, task_id: str) -> None:
        """A leased task went back unstarted, or was dropped: its live attempt never was."""
        attempt = self.live.pop(task_id, None)
        task = self.tasks.get(task_id)
        if attempt is not None and task is not None and task.attempts[-1] is attempt:
            task.attempts.pop()
            if not task.attempts:
                del self.tasks[task_id]

    def prune(self, now: float, batch: int) -> int:
        """Forget up to ``batch`` ended tasks: past ``keep_s`` or beyond ``max_tasks``."""
        self.now = now
        cutoff = self.wall(now) - self.keep_s
        dropped = 0
        while self.tasks and dropped < batch:
            task_id, task = next(iter(self.tasks.items()))
            if task.outcome and task.ended >= cutoff and len(self.tasks) <= self.max_tasks:
                break
            if not task.outcome:  # still running: look again once it ends
                if len(self.tasks) <= self.max_tasks:
                    break
                self.tasks.move_to_end(task_id)
                continue
            del self.tasks[task_id]
            self._gone.append(task_id)
            dropped += 1
        return dropped

    def restore(self, attempt: Attempt) -> None:
        """Put back a journaled attempt (in the order they ended)."""
        task = self.tasks.get(attempt.task_id)
        if task is None:
            task = self.tasks[attempt.task_id] = TaskHistory(attempt.task_id, attempt.job,
                                                             attempt.queue)
        task.attempts.append(attempt)
        task.attempts.sort(key=lambda a: a.n)
        if attempt.final:
            task.ended, task.outcome = attempt.ended, attempt.outcome
            if attempt.outcome != "ok":
                self.recent_failed.append(attempt.task_id)

    def replay_windows(self, since: float) -> int:
        """Rebuild the one-minute windows from the restored attempts that ended at or after
        the wall time ``since``; returns how many were counted. What was submitted per
        minute is not in the history: those bars start from zero."""
        recent = sorted((a for t in self.tasks.values() for a in t.attempts
                         if a.outcome and a.ended >= since), key=lambda a: a.ended)
        for a in recent:
            ran = a.started > 0
            wait = max(0.0, a.started - a.queued) if ran and a.queued else None
            self.stats.replay(a.ended, wait, a.ended - a.started if ran else None,
                              a.outcome if a.final else None)
        return len(recent)

    def drain(self) -> tuple[list[Attempt], list[str], Counter[CounterKey]]:
        written, gone = self._written, self._gone
        self._written, self._gone = [], []
        return written, gone, self.stats.drain()

    def _task(self, rec: TaskRecord) -> TaskHistory:
        task = self.tasks.get(rec.msg.task_id)
        return task if task is not None else self._new_task(rec.msg)

    def _new_task(self, msg: TaskMsg) -> TaskHistory:
        task = self.tasks[msg.task_id] = TaskHistory(msg.task_id, job_name(msg.outbox),
                                                     msg.options.queue)
        return task
