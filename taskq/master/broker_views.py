"""The broker's read-only calls: what ``taskq status``, ``queue list``, ``top``, the web page,
``/metrics``, ``history``, ``inspect`` and ``explain`` show.

Mixed into ``taskq.master.broker.Broker``, whose lock, state, clock and journal they share. None
of them changes the state, so none commits or waits: each copies what it needs under the
lock and, where shaping takes longer, shapes it outside::

    CLI / web / http ── status / queues / monitor / metrics / history / inspect / explain ──►
        lock ─► BrokerState (read, copied) ─► unlock ─► taskq.master.state.views (shaped) ─► reply
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskq.defaults import HEARTBEAT_S, JOB_OUTBOX_PREFIX
from taskq.master.broker_core import BrokerCore
from taskq.master.state import views
from taskq.master.state.autoscale import desired_workers
from taskq.master.state.explain import explain
from taskq.master.state.history import job_name
from taskq.master.state.limits import QueueLimit
from taskq.master.state.resources import describe, unfit
from taskq.protocol.messages import Schedule
from taskq.protocol.replies import (
    ClusterStatus,
    Explanation,
    MasterInfo,
    QueueRow,
    ResultState,
    WorkerRow,
)


class BrokerViews(BrokerCore):
    """The broker's read-only remote calls; see the module docstring."""

    def info(self) -> MasterInfo:
        s = self._state
        return MasterInfo(s.max_payload, s.lost_after, HEARTBEAT_S, self._journal is not None,
                          epoch=self.epoch)

    def result_states(self, task_ids: list[str]) -> list[ResultState]:
        """For each id: running, kept (its result can be read), expired or unknown."""
        if type(task_ids) is not list:
            raise ValueError("task ids must be a list of strings")
        with self._lock:
            now = self._clock()
            return [self._state.result_state(t, now) if type(t) is str
                    else ResultState.UNKNOWN for t in task_ids]

    def running_tasks(self, job: str) -> list[dict[str, Any]]:
        """The running tasks of the job named ``job``: worker, since (wall clock), attempt,
        whether a stop was asked, and their last progress [done, total, message]."""
        with self._lock:
            return self._state.running_of(JOB_OUTBOX_PREFIX + job)

    def schedules(self) -> list[Schedule]:
        """Every schedule, without its function and arguments."""
        with self._lock:
            return [replace(s, fn=b"", args=b"")
                    for s in sorted(self._state.schedules.by_name.values(),
                                    key=lambda s: s.name)]

    def queues(self) -> list[QueueRow]:
        """Every queue with tasks, running tasks or limits."""
        with self._lock:
            s = self._state
            names = {q for q, n in s.pending_by_queue.items() if n} | set(s.limits.by_queue) \
                | {q for q, n in s.limits.running_by_queue.items() if n} | s.limits.paused
            rows = []
            for name in sorted(names):
                limit = s.limits.by_queue.get(name, QueueLimit())
                rows.append(QueueRow(name, s.pending_by_queue[name],
                                     s.limits.running_by_queue[name], limit.rate,
                                     limit.concurrency, name in s.limits.paused))
            return rows

    def status(self) -> ClusterStatus:
        with self._lock:
            s, now = self._state, self._clock()
            rows = [WorkerRow(w.worker_id, w.host, w.pid, w.procs, w.running, len(w.held),
                              w.done, w.failed, round(now - w.last_seen, 3), pool=w.pool,
                              resources=describe(w.resources), memory=w.memory,
                              draining=w.draining)
                    for w in s.workers.values()]
            pending = {q: n for q, n in s.pending_by_queue.items() if n > 0}
            waiting = sum(len(b.results) for b in s.outboxes.values())
            return ClusterStatus(rows, pending, len(s.leased), s.finished_ok, s.finished_failed,
                                 waiting, round(now - self._started, 3), self._journal is not None,
                                 s.queues.waiting_count, unfit(s.queues.heaps, s.resources),
                                 blocked=s.deps.blocked_count,
                                 desired=desired_workers(s.queues, s.limits, s.sizes))

    def monitor(self) -> dict[str, Any]:
        """What the dashboard and ``taskq top`` show: workers, queues, jobs, recent failures
        and one-minute figures; copied under the lock, shaped outside it."""
        with self._lock:
            copy = views.monitor_copy(self._state, self._clock())
        copy["uptime"] = round(self._clock() - self._started, 3)
        copy["durable"] = self._journal is not None
        return views.render_monitor(copy)

    def metrics(self) -> dict[str, Any]:
        """Counters, gauges and histograms for /metrics."""
        with self._lock:
            out = views.metrics_copy(self._state)
            journal = self._journal
        out["commit"] = journal.commit_seconds.copy() if journal is not None else None
        return out

    def history(self, *, job: str | None = None, failed: bool = False,
                since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Tasks' histories, newest first: of one job, failed ones only, ended since a wall
        time (seconds since the epoch)."""
        with self._lock:
            refs = views.history_refs(self._state)
        return views.select(refs, job, failed, since, limit)

    def inspect(self, task_id: str) -> dict[str, Any] | None:
        """One task's attempts and where it is now; None if the master knows nothing of it."""
        with self._lock:
            task = self._state.history.tasks.get(task_id)
            where = views.task_state(self._state, task_id)
            out = task.as_dict() if task is not None else None
            if out is None and where != "ended":
                rec = self._state.tasks[task_id]
                out = {"task_id": task_id, "job": job_name(rec.msg.outbox),
                       "queue": rec.msg.options.queue, "ended": 0.0, "outcome": "",
                       "attempts": []}
            links = views.replay_links(self._state.dead, task_id)
        if out is not None:
            out["state"] = where
            out.update(links)
        return out

    def explain(self, task_id: str) -> Explanation:
        """Why a task is where it is (``taskq explain``)."""
        with self._lock:
            return explain(self._state, task_id, self._clock())
