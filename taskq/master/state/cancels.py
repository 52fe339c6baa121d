"""Cancelling tasks, as part of ``BrokerState``: queued ones at once; one a worker leased
but has not begun, by asking that worker (in its poll, ``take``), which drops it and answers.

    cancel(ids) ── queued/waiting ──► CANCELLED result       leased, started ──► running
                └─ leased, not begun ──► worker.to_ask ── control() ──► the worker answers:
                     dropped ──► CANCELLED result;  runs ──► started;  silent ──► its lease
                     expires ──► CANCELLED result (it runs nowhere then)
"""

from __future__ import annotations

from taskq.master.state.records import TaskRecord, WorkerInfo
from taskq.master.state.uniques import Uniques
from taskq.protocol.messages import ResultMsg, Status, TaskState
from taskq.protocol.replies import CancelOutcome


class CancelsMixin:
    """The cancel half of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    leased: dict[str, TaskRecord]
    workers: dict[str, WorkerInfo]
    uniques: Uniques

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...  # pragma: no cover
    def _mark_started(self, rec: TaskRecord) -> None: ...  # pragma: no cover
    def _cancel_alias(self, task_id: str) -> None: ...  # pragma: no cover

    def cancel(self, task_ids: list[str]) -> CancelOutcome:
        """Cancel tasks that have not started: queued ones at once; for a leased one whose
        start is not known, its worker is asked (in its poll) and the caller asks again."""
        out = CancelOutcome()
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is None and task_id in self.uniques.aliases:
                self._cancel_alias(task_id)  # only this submitter's part of a unique task
                out.cancelled.append(task_id)
            elif rec is None:
                out.unknown.append(task_id)
            elif rec.state is not TaskState.LEASED:
                self._finish(rec, ResultMsg(task_id, Status.CANCELLED,
                                            detail="cancelled before it started"))
                out.cancelled.append(task_id)
            elif rec.started:
                out.running.append(task_id)
            else:
                self._ask_to_cancel(rec)
                out.asked.append(task_id)
        return out

    def cancel_progress(self, recs: list[TaskRecord]) -> CancelOutcome:
        """Where cancels asked of workers stand (``cancel`` again for those still live)."""
        ended = [r for r in recs if r.ended is not None]
        out = self.cancel([r.msg.task_id for r in recs if self.tasks.get(r.msg.task_id) is r])
        for rec in ended:
            if rec.ended is Status.CANCELLED:
                out.cancelled.append(rec.msg.task_id)
            elif rec.ended is not None:
                out.unknown.append(rec.msg.task_id)
        return out

    def has_asks(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        return worker is not None and bool(worker.to_ask)

    def _ask_to_cancel(self, rec: TaskRecord) -> None:
        if rec.cancel_asked:
            return
        rec.cancel_asked = True
        holder = self.workers.get(rec.worker or "")
        if holder is not None:  # else its lease expires: it is then queued, or lost
            holder.to_ask.append(rec.msg.task_id)

    def control(self, worker_id: str, answers: dict[str, bool]) -> list[str]:
        """Take a worker's answers to cancel requests (True: dropped, it never runs);
        return the requests it has not been given yet."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return []
        for task_id, dropped in answers.items():
            worker.asked.discard(task_id)
            rec = self.leased.get(task_id)
            if rec is None or rec.worker != worker_id or not (rec.cancel_asked
                                                              or rec.stop_asked):
                continue
            rec.cancel_asked = False
            if dropped:
                self._finish(rec, ResultMsg(task_id, Status.CANCELLED,
                                            detail="cancelled before it started"))
            elif not rec.started and not rec.stop_asked:
                self._mark_started(rec)
        asks, worker.to_ask = worker.to_ask, []
        worker.asked.update(asks)
        return asks
