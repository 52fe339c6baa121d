"""An operator's controls over queues and workers, as part of ``BrokerState``: pause,
resume and purge a queue; drain a worker.

    pause(q) ── q in limits.paused (journaled) ──► the gate (Limits.queue_open) shuts q:
                submits are accepted, nothing of q is leased, other queues run on
    resume(q) ── the gate opens again (the broker wakes the parked polls)
    purge(q) ── every task of q that no worker holds (queued, or waiting for its time)
                ──► CANCELLED at once; leased and running tasks are left alone
    drain(w) ── w.draining: it is leased nothing more; w.drain_asked: the reply to its next
                beat tells it, and it stops as on SIGTERM (finishes what runs, hands back
                what it has not begun, says goodbye)

A queue is *known* when it has a task (in any state), a worker that serves it, limits, or
is paused: pausing or purging any other name is refused as a likely typo. A drain is not
journaled: the worker knows it drains, and says so when it joins a restarted master.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from taskq.master.state.limits import Limits
from taskq.master.state.queues import TaskQueues
from taskq.master.state.records import Changes, TaskRecord, WorkerInfo
from taskq.protocol.messages import ResultMsg, Status, TaskState

PURGED = "cancelled before it started: its queue was purged"


class ControlsMixin:
    """The operator-controls part of ``BrokerState`` (which provides what is declared
    here)."""

    tasks: dict[str, TaskRecord]
    workers: dict[str, WorkerInfo]
    queues: TaskQueues
    limits: Limits
    changes: Changes
    now: float

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...  # pragma: no cover

    if TYPE_CHECKING:  # from StopsMixin (a stub here would hide it)
        def _may_be_held(self, rec: TaskRecord) -> bool: ...

    def known_queue(self, queue: str) -> bool:
        """Does the master know this queue (see the module docstring)?"""
        limits = self.limits
        if queue in limits.paused or queue in limits.by_queue \
                or self.queues.pending_by_queue[queue] or limits.running_by_queue[queue]:
            return True
        if any(queue in w.queues for w in self.workers.values()):
            return True
        return any(rec.msg.options.queue == queue for rec in self.tasks.values())

    def pause_queue(self, queue: str, paused: bool) -> bool | None:
        """Pause (or resume) a queue; False if it already was, None if the master does not
        know the queue."""
        if not self.known_queue(queue):
            return None
        if (queue in self.limits.paused) == paused:
            return False
        if paused:
            self.limits.paused.add(queue)
        else:
            self.limits.paused.discard(queue)
        self.changes.paused.append((queue, paused))
        return True

    def restore_pauses(self, queues: Iterable[str]) -> None:
        """The journaled pauses (master restart)."""
        self.limits.paused.update(queues)

    def purge_queue(self, queue: str, now: float) -> list[str] | None:
        """Cancel every task of the queue that no worker holds; returns their ids (None:
        the master does not know the queue)."""
        if not self.known_queue(queue):
            return None
        self.now = now
        doomed = [rec for rec in self.tasks.values() if rec.msg.options.queue == queue
                  and rec.state in (TaskState.PENDING, TaskState.WAITING)
                  and not rec.stop_asked and not self._may_be_held(rec)]
        for rec in doomed:
            self._finish(rec, ResultMsg(rec.msg.task_id, Status.CANCELLED, detail=PURGED))
        return [rec.msg.task_id for rec in doomed]

    def drain_worker(self, worker_id: str) -> bool:
        """Ask a worker to drain (see the module docstring); False if it is not known."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.draining = worker.drain_asked = True
        return True

    def drain_untold(self, worker_id: str) -> bool:
        """Was this worker asked to drain, and no poll's answer told it yet? (Its parked
        poll answers at once.)"""
        worker = self.workers.get(worker_id)
        return worker is not None and worker.drain_asked and not worker.drain_polled

    def drain_for_poll(self, worker_id: str) -> bool:
        """Must a poll's answer tell this worker to drain? Once one has, ``drain_untold``
        no longer makes its parked poll answer at once."""
        told = self.drain_told(worker_id)
        if told:
            self.workers[worker_id].drain_polled = True
        return told

    def drain_told(self, worker_id: str) -> bool:
        """Must the reply to this worker's beat tell it to drain?"""
        worker = self.workers.get(worker_id)
        return worker is not None and worker.drain_asked

    def _carry_drain(self, old: WorkerInfo | None, info: WorkerInfo, draining: bool) -> None:
        """A worker (re)joined: it drains if it says so, or if it was asked to and has not
        heard yet."""
        asked = old is not None and old.drain_asked
        info.draining = draining or asked or (old is not None and old.draining)
        info.drain_asked = asked
