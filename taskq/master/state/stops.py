"""Stopping tasks even while they run (a hard cancel), and running tasks' progress, as part
of ``BrokerState``.

A stop is final the moment it is asked: the task is marked ``stop_asked`` (journaled), and
however it ends from then on, it ends CANCELLED, once, and is never retried or queued again::

    stop(ids) ── queued / waiting ──────────────────────────► CANCELLED at once
              ├─ leased (begun or not) ── worker.to_ask: stop_ask(id) ── control() ──►
              │     the worker drops or kills it and reports ──► complete: CANCELLED
              │     (whatever it reports: a result that raced the stop is dropped)
              │  its worker silent ── lease expires ──► CANCELLED; when the worker comes
              │     back and its heartbeat still lists the task, it is asked to stop it
              │  it hands the task back (stopping) ──► CANCELLED
              └─ restored after a master restart, held for its holder to claim it back:
                    claimed (heartbeat) ──► leased: asked as above;  not claimed by the end
                    of the hold (promote) ──► CANCELLED

Progress (``taskq.worker.report``) comes with heartbeats: the last value of each running task is
kept on its record (not journaled) and handed to its submitter with the next fetch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from taskq.defaults import KNOWN_JOBS_KEPT
from taskq.master.state.history import History
from taskq.master.state.queues import TaskQueues
from taskq.master.state.records import Changes, Outbox, TaskRecord, WorkerInfo
from taskq.master.state.uniques import Uniques
from taskq.protocol.messages import ResultMsg, Status, TaskState, stop_ask
from taskq.protocol.progress import from_wire
from taskq.protocol.replies import CancelOutcome

STOPPED = "cancelled while it ran"


class StopsMixin:
    """The hard-cancel and progress half of ``BrokerState`` (which provides what is
    declared here)."""

    tasks: dict[str, TaskRecord]
    leased: dict[str, TaskRecord]
    workers: dict[str, WorkerInfo]
    outboxes: dict[str, Outbox]
    uniques: Uniques
    history: History
    queues: TaskQueues
    changes: Changes
    restore_hold_until: float
    wall_offset: float
    now: float
    stopped_away: OrderedDict[str, None]  # stopped while their worker was away (bounded)

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...  # pragma: no cover
    def _cancel_alias(self, task_id: str) -> None: ...  # pragma: no cover

    def stop(self, task_ids: list[str], now: float) -> CancelOutcome:
        """Cancel tasks wherever they are, running ones included; see the module docstring."""
        self.now = now
        out = CancelOutcome()
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is None:
                self._stop_gone(task_id, out)
            elif rec.state is TaskState.LEASED or rec.stop_asked or self._may_be_held(rec):
                self._ask_to_stop(rec)
                out.stopping.append(task_id)
            else:
                self._finish(rec, ResultMsg(task_id, Status.CANCELLED,
                                            detail="cancelled before it started"))
                out.cancelled.append(task_id)
        return out

    def _stop_gone(self, task_id: str, out: CancelOutcome) -> None:
        if task_id in self.uniques.aliases:
            self._cancel_alias(task_id)
            out.cancelled.append(task_id)
        elif (how := self.ended_how(task_id)) is not None:
            out.ended[task_id] = how
        else:
            out.unknown.append(task_id)

    def _may_be_held(self, rec: TaskRecord) -> bool:
        """A task restored after a master restart may still run on a worker that has not
        claimed it back yet: it is stopped like a running one."""
        return rec.state is TaskState.WAITING and rec.queued_at == 0.0 \
            and self.now < self.restore_hold_until

    def _ask_to_stop(self, rec: TaskRecord) -> None:
        """Mark the task stopped (journaled once) and ask its holder, if it has one."""
        if not rec.stop_asked:
            rec.stop_asked = True
            self.changes.stops.append(rec.msg.task_id)
        holder = self.workers.get(rec.worker or "") if rec.state is TaskState.LEASED else None
        ask = stop_ask(rec.msg.task_id)
        if holder is not None and ask not in holder.asked and ask not in holder.to_ask:
            holder.to_ask.append(ask)

    def stopped_result(self, rec: TaskRecord, how: str, result: ResultMsg | None = None,
                       ) -> ResultMsg:
        """The CANCELLED result a stopped task ends with."""
        worker = result.worker if result is not None else ""
        duration = result.duration if result is not None else 0.0
        return ResultMsg(rec.msg.task_id, Status.CANCELLED, None, f"{STOPPED}: {how}", worker,
                         duration, False)

    def end_stopped(self, rec: TaskRecord, how: str) -> None:
        """A stopped task ends without its worker's word (lease expired, not claimed back
        after a restart): should a worker still run it, its next heartbeat gets it asked."""
        self._finish(rec, self.stopped_result(rec, how))
        self.stopped_away[rec.msg.task_id] = None
        if len(self.stopped_away) > KNOWN_JOBS_KEPT:
            self.stopped_away.popitem(last=False)

    def stop_again(self, worker: WorkerInfo, task_id: str) -> None:
        """A worker's heartbeat lists a task the master no longer holds: if it was stopped
        while that worker was away, the worker is asked to stop it now."""
        ask = stop_ask(task_id)
        if task_id in self.stopped_away and ask not in worker.to_ask and ask not in worker.asked:
            worker.to_ask.append(ask)

    def restore_stop(self, task_id: str) -> None:
        """A journaled stop request (master restart; after ``restore_task``): its task is
        held for its holder to claim it back, and never queued (see the module docstring)."""
        rec = self.tasks.get(task_id)
        if rec is None:
            return
        rec.stop_asked = True
        if rec.state is TaskState.PENDING:  # no hold: it ends at the next promote
            self.queues.remove(rec)
            self.queues.hold(rec, self.restore_hold_until)

    def ended_how(self, task_id: str) -> str | None:
        """How a task the master no longer holds ended ("ok", "raised", ...), if known."""
        past = self.history.tasks.get(task_id)
        if past is not None and past.outcome:
            return past.outcome
        for box in self.outboxes.values():
            result = box.results.get(task_id)
            if result is not None:
                return result.status.value
        return None

    def open_ids(self, outbox: str) -> list[str]:
        """The ids of an outbox's tasks that have not ended."""
        return [t for t, rec in self.tasks.items() if rec.msg.outbox == outbox]

    # ------------------------------------------------------------------ progress

    def note_progress(self, worker_id: str, progress: dict[str, Any]) -> int:
        """Keep the progress a worker reports for tasks it runs; returns how many it took."""
        taken = 0
        for task_id, value in progress.items():
            rec = self.leased.get(task_id)
            got = from_wire(value) if rec is not None and rec.worker == worker_id else None
            if rec is None or got is None:
                continue
            rec.progress = got
            rec.progress_updates += 1
            box = self.outboxes.get(rec.msg.outbox)
            if box is not None:
                box.progressed.add(task_id)
            taken += 1
        return taken

    def progress_of(self, box: Outbox) -> dict[str, tuple[Any, ...]]:
        """The changed progress of an outbox's running tasks (once per change)."""
        out = {}
        for task_id in box.progressed:
            rec = self.leased.get(task_id)
            if rec is not None and rec.progress is not None:
                out[task_id] = tuple(rec.progress)
        box.progressed.clear()
        return out

    def running_of(self, outbox: str) -> list[dict[str, Any]]:
        """An outbox's running tasks: where, since when (wall clock), their progress and
        how many progress updates reached the master for this run."""
        box = self.outboxes.get(outbox)
        rows = []
        for task_id in sorted(box.running) if box is not None else ():
            rec = self.leased.get(task_id)
            if rec is None:
                continue
            rows.append({"task_id": task_id, "worker": rec.worker or "",
                         "since": rec.started_at + self.wall_offset if rec.started_at else 0.0,
                         "attempt": rec.msg.attempt, "stopping": rec.stop_asked,
                         "progress": None if rec.progress is None else list(rec.progress),
                         "updates": rec.progress_updates})
        return rows
