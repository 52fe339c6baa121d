"""Tasks that must start by a deadline (``expires``), as part of ``BrokerState``: when each
is due, and how it ends when it did not start in time (EXPIRED: it never runs).

    submit ──► expires_at = wall time now + expires (journaled in the task's options; a
               restore reads it back) ──► _expiry_due.add(task, deadline on this clock)
    lease(now) ──► popped task past its deadline? ──► EXPIRED, never handed out
    expire(now) ──► _expiry_due.pop(now): each task past its deadline that is queued,
                    waiting (delayed, a retry's backoff) or blocked on dependencies ──► EXPIRED
                    (the heap is rebuilt when most of its entries are of ended tasks)
    leased, not started ──► its worker does not start it past the deadline (it reports
                    EXPIRED: ``taskq.worker.execute``); the entry leaves the heap, and
                    ``_unlease`` puts it back when the task returns to the queue (its worker
                    lost, a retry): a retry after the deadline expires too
    restored and held for the worker that held it (``claims``) ──► looked at again when its
                    hold ends: that worker may be running it
    stopped (``state.stops``) ──► never expires: it ends CANCELLED, as the stop says

The deadline is the master's (its wall clock at submit); a worker compares it with its own
clock, so hosts' clocks should agree (NTP) to within ``EXPIRES_SKEW_S``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from taskq.master.state.crowd import Due
from taskq.master.state.records import TaskRecord
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskState

# A heap entry leaves only when its time comes, so the entries of tasks that ended long
# before their deadline (a day's expires) pile up: once there are more than twice the live
# tasks plus this many, the heap is rebuilt from the live tasks (amortised O(1) a task).
COMPACT_SLACK = 4096


def stamp(msg: TaskMsg, wall_now: float) -> bool:
    """Set a new task's deadline from its ``expires`` (a fresh options object: a batch's
    tasks may share one); False if it has none. A value that is not a positive number
    (only a client that skips ``taskq.task``'s checks sends one) means no limit."""
    expires = msg.options.expires
    if expires is None:  # (most tasks: no isinstance checks)
        return False
    if isinstance(expires, bool) or not isinstance(expires, int | float) \
            or not math.isfinite(expires) or expires <= 0:
        return False
    msg.options = replace(msg.options, expires_at=wall_now + float(expires))
    return True


class ExpiryMixin:
    """The expiry half of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    claims: dict[str, dict[str, float]]
    wall_offset: float
    _expiry_due: Due

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...  # pragma: no cover

    def _stamp_expiry(self, rec: TaskRecord, now: float) -> None:
        """A new task: its deadline from its ``expires`` (``stamp``), and a look at it then."""
        if stamp(rec.msg, now + self.wall_offset):
            self._watch_expiry(rec)

    def _watch_expiry(self, rec: TaskRecord) -> None:
        """Look at this task at its deadline (if it has one)."""
        if rec.msg.options.expires_at:
            self._expiry_due.add(rec.msg.task_id, rec.msg.options.expires_at - self.wall_offset)

    def expiry_deadline(self, rec: TaskRecord) -> float | None:
        """When the task expires, on this state's clock (None: it has no deadline)."""
        at = rec.msg.options.expires_at
        return at - self.wall_offset if at else None

    def _past_deadline(self, rec: TaskRecord, now: float) -> bool:
        deadline = self.expiry_deadline(rec)
        return deadline is not None and now >= deadline

    def _expiry_time(self, task_id: str) -> float | None:
        """The time to look at a task again (None: never, it ended or a worker has it)."""
        rec = self.tasks.get(task_id)
        if rec is None or rec.state is TaskState.LEASED or rec.stop_asked:
            return None  # (a stopped one ends CANCELLED, as its stop says)
        deadline = self.expiry_deadline(rec)
        if deadline is not None and rec.state is TaskState.WAITING and self._claim_held(rec):
            return max(deadline, rec.not_before)  # its old holder may claim it back
        return deadline

    def _claim_held(self, rec: TaskRecord) -> bool:
        return any(rec.msg.task_id in held for held in self.claims.values())

    def expire_due(self, now: float) -> int:
        """End every task that did not start by its deadline and is not with a worker."""
        self._compact_expiry()
        ended = 0
        for task_id in self._expiry_due.pop(now, self._expiry_time):
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state is not TaskState.LEASED:
                self._end_expired(rec)
                ended += 1
        return ended

    def _compact_expiry(self) -> None:
        if len(self._expiry_due) <= 2 * len(self.tasks) + COMPACT_SLACK:
            return
        self._expiry_due = Due()
        for rec in self.tasks.values():
            if rec.state is not TaskState.LEASED:  # (a leased one is back on it if requeued)
                self._watch_expiry(rec)

    def _end_expired(self, rec: TaskRecord) -> None:
        tries = rec.errors + rec.lost
        after = f" (its retry, after {tries} attempt{'s' * (tries > 1)})" if tries else ""
        self._finish(rec, ResultMsg(rec.msg.task_id, Status.EXPIRED, detail=(
            f"it did not start within its expires={rec.msg.options.expires:g} s{after}; "
            f"it never ran")))
