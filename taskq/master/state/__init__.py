"""The broker's state: queues, leases, workers and outboxes, as a plain object.

No sockets, no threads, no clock: every method takes ``now``. The master's service wraps
one ``BrokerState`` in a lock and a wire; unit and property tests drive it directly.

    submit ──► pending heaps (per queue; priority, then arrival)     restored from the journal
                   │ lease(worker, n)              ▲ due(now)      ──► waiting (held back for
                   ▼                               │                   the claim window)
               leased (deadline = now + silence, renewed by heartbeats) ── start ──► started
          ┌────────┼──────────────┬─────────────────────────┬──────────────────┐
    complete(OK)   complete(ERROR) expire: worker silent      release            cancel: pending
          │        retries left?  lost < max? requeue        (graceful stop)    at once; leased,
          ▼        requeue : ▼    else LOST result           requeue            not started: ask
       outbox[task.outbox] ──► fetch(ack) ──► gone                              its worker
                                                                                 (control)

Every task ends exactly once, with one result in its outbox (a cancelled task's result says
CANCELLED). A stop (a cancel that reaches running tasks too) is final and journaled: see
``taskq.master.state.stops``, which also keeps running tasks' progress. Late or duplicate results
for a task that already ended are dropped. A task not started by its expiry deadline ends
EXPIRED (``taskq.master.state.expiry``). What changed is collected in ``changes`` so the
journal can persist it after each call.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import replace

from taskq.defaults import (
    JOB_OUTBOX_PREFIX,
    KEPT_RESULT_TTL_S,
    SCHEDULE_RESULTS_KEPT,
)
from taskq.master.state import replays, unloadable
from taskq.master.state.autoscale import WorkerSizes
from taskq.master.state.cancels import CancelsMixin
from taskq.master.state.controls import ControlsMixin
from taskq.master.state.crowd import Crowd, Due
from taskq.master.state.dead import DeadLetters
from taskq.master.state.deps import Deps, DepsMixin
from taskq.master.state.expiry import ExpiryMixin
from taskq.master.state.followups import CALLBACKS_OUTBOX, Children, FollowupsMixin
from taskq.master.state.history import History
from taskq.master.state.limits import Limits
from taskq.master.state.liveness import RESTORING, LivenessMixin
from taskq.master.state.outboxes import OutboxesMixin
from taskq.master.state.queues import TaskQueues
from taskq.master.state.records import Changes, Outbox, TaskRecord, WorkerInfo
from taskq.master.state.resources import FitGate, Resources
from taskq.master.state.retention import Retained, RetentionMixin
from taskq.master.state.schedules import Schedules
from taskq.master.state.stops import StopsMixin
from taskq.master.state.uniques import Uniques
from taskq.protocol.messages import (
    SCHEDULE_PREFIX,
    ResultMsg,
    Schedule,
    Status,
    TaskMsg,
    TaskOptions,
    TaskState,
)
from taskq.protocol.replies import CancelOutcome, Replayed

SCHEDULES_OUTBOX = f"{JOB_OUTBOX_PREFIX}{SCHEDULE_PREFIX}"

__all__ = ["RESTORING", "BrokerState", "CancelOutcome", "Changes", "Outbox", "TaskRecord",
           "WorkerInfo"]


class BrokerState(OutboxesMixin, CancelsMixin, StopsMixin, DepsMixin, ExpiryMixin,
                  RetentionMixin, ControlsMixin, LivenessMixin, FollowupsMixin):
    """All of the master's bookkeeping; see the module docstring."""

    def __init__(self, *, lost_after: float, max_lost: int, max_payload: int) -> None:
        self.lost_after = lost_after
        self.max_lost = max_lost
        self.max_payload = max_payload
        self.tasks: dict[str, TaskRecord] = {}
        self.leased: dict[str, TaskRecord] = {}
        self.queues = TaskQueues()
        self.pending_by_queue = self.queues.pending_by_queue
        self.crowd = Crowd()
        self._lease_due = Due()  # the leases' deadlines, looked at by expire
        self._expiry_due = Due()  # tasks' expiry deadlines (state.expiry), looked at by expire
        self._orphaned: list[str] = []  # leases of workers that said goodbye holding them
        self.workers = self.crowd.workers  # read here; added and removed through the crowd
        self.outboxes: dict[str, Outbox] = {}
        self.emptied_jobs: OrderedDict[str, None] = OrderedDict()  # fetched to the end
        self.finished_ok = 0
        self.finished_failed = 0
        self.restore_hold_until = 0.0  # restored tasks wait until then for their holders
        # restored leases by their holder: task id -> its own not_before (see restore_task)
        self.claims: dict[str, dict[str, float]] = {}
        # with a journal, a schedule's tick is not leased until the journal has it (with its
        # schedule's next run): a restart would create it again, and it would run twice
        self.hold_ticks = False
        self.unjournaled: set[str] = set()
        self.wall_offset = 0.0  # wall-clock time minus this state's clock (for run_at)
        self.random = random.Random()  # backoff jitter; tests seed it  # noqa: S311 -- backoff jitter, not a secret
        self.schedules = Schedules()
        self.limits = Limits()
        self.resources = Resources()
        self.sizes = WorkerSizes()  # per queue, for the autoscaling target (state.autoscale)
        self.uniques = Uniques()
        self.deps = Deps(self.tasks)  # dependents and the results kept for them
        self.children = Children()  # live tasks by the task that submitted them
        self.now = 0.0  # the latest time a call gave (for unique_for windows)
        self.changes = Changes()
        self.stopped_away: OrderedDict[str, None] = OrderedDict()  # see state.stops
        self.history = History()
        self.retained = Retained()  # results kept by id for their result_ttl
        self.result_ttl = KEPT_RESULT_TTL_S  # the master's default (--result-ttl)
        self.dead = DeadLetters()  # tasks that failed for good, to replay (state.dead)
        self._seq = 0

    # ------------------------------------------------------------------ submitters

    def submit(self, tasks: list[TaskMsg], now: float) -> int:
        """Accept new tasks; ids already known are ignored (resubmits are idempotent)."""
        accepted = 0
        self.now = now
        counted: Counter[str] = Counter()  # submits per queue, counted once per call
        for msg in tasks:
            if msg.task_id in self.tasks or self._has_result(msg.outbox, msg.task_id) \
                    or msg.task_id in self.uniques.aliases:
                continue
            if msg.options.unique and self._join(msg, now):
                continue
            box = self._outbox(msg.outbox)
            box.open += 1
            counted[msg.options.queue] += 1
            if msg.size > self.max_payload:
                self._finish_new(msg, f"task is {msg.size} bytes, over the master's "
                                      f"--max-payload of {self.max_payload} bytes")
                continue
            self._seq += 1
            rec = TaskRecord(msg=msg, seq=self._seq, queued_at=now)
            self.tasks[msg.task_id] = rec
            self._stamp_expiry(rec, now)
            self.children.add(msg)
            if msg.options.unique:
                self.uniques.live[msg.options.unique] = msg.task_id
            accepted += 1
            if msg.deps and not self._accept_deps(rec):  # blocked, or it ended at once
                if rec.state is TaskState.BLOCKED:
                    self.changes.added.append(rec)
                continue
            start = msg.options.run_at - self.wall_offset  # on this state's clock
            if msg.options.run_at and start > now:
                self.queues.hold(rec, start)
            else:
                self.queues.push(rec)
            self.changes.added.append(rec)
        for queue, n in counted.items():
            self.history.submitted(queue, n, now)
        return accepted

    def restore_task(self, msg: TaskMsg, seq: int, lost: int, errors: int,
                     not_before: float = 0.0, refused_by: dict[str, str] | None = None,
                     holder: str = "") -> None:
        """Put back a journaled task (master restart). A task that was leased (to
        ``holder``) waits for that worker to claim it back (``open_claims``,
        ``claims_settled``) so that it does not run twice; one that was not goes back to the
        queue at once; a task that was waiting (delayed, or for a retry) waits until its
        time. ``refused_by``: the workers that could not load it, and why."""
        rec = TaskRecord(msg=msg, seq=seq, lost=lost, errors=errors,
                         refused_by=refused_by or None)
        self.tasks[msg.task_id] = rec
        self._watch_expiry(rec)
        self.children.add(msg)
        if msg.options.unique:
            self.uniques.live[msg.options.unique] = msg.task_id
        self._outbox(msg.outbox).open += 1
        self._seq = max(self._seq, seq)
        if msg.deps and not self._restore_deps(rec):
            return
        until = not_before
        if holder and self.restore_hold_until > 0:
            until = max(self.restore_hold_until, not_before)
            self.claims.setdefault(holder, {})[msg.task_id] = not_before
        if until > 0:
            self.queues.hold(rec, until)
        else:
            self.queues.push(rec)

    def restore_alias(self, alias: str, outbox: str, target: str) -> None:
        """Put back a submit that joined a unique task (master restart)."""
        if target in self.tasks:
            self.uniques.join(target, outbox, alias)
            self._outbox(outbox).open += 1
        self.uniques.drain()  # restored, not new: nothing to journal

    def _join(self, msg: TaskMsg, now: float) -> bool:
        """A submit with a unique key that is taken joins that task (True)."""
        target = self.uniques.target(msg.options.unique, now)
        if target is None:
            return False
        box = self._outbox(msg.outbox)
        if isinstance(target, ResultMsg):  # it ended within its unique_for: that result
            copy = replace(target, task_id=msg.task_id)
            box.results[msg.task_id] = copy
            self.changes.finished.append((msg.outbox, copy))
        else:
            box.open += 1
            self.uniques.join(target, msg.outbox, msg.task_id)
        return True

    def _cancel_alias(self, task_id: str) -> None:
        outbox = self.uniques.leave(task_id)
        if outbox is not None:
            self._deliver(outbox, ResultMsg(task_id, Status.CANCELLED,
                                            detail="cancelled before it started"))

    def replay(self, task_ids: list[str], new_ids: list[str], outbox: str, now: float, *,
               echo: bool = False) -> list[Replayed]:
        """Run dead letters again as new tasks (``taskq.master.state.replays``)."""
        return replays.replay(self, task_ids, new_ids, outbox, now, echo=echo)

    def lease(self, worker_id: str, n: int, now: float, max_bytes: int | None = None,
              track: bool = False) -> list[TaskMsg]:
        """Hand up to n pending tasks (and about max_bytes of bodies) to a worker. With
        ``track`` the batch is kept until the worker's next take says it arrived
        (``arrived``)."""
        worker = self.workers.get(worker_id)
        if worker is None or n <= 0 or worker.draining:  # a stopping one handed tasks back
            return []
        # (the call that asks renews its worker, not the lease: a parked poll run again by
        # others' work is no sign of life, see heard_from)
        out: list[TaskMsg] = []
        size = 0
        self.limits.now = now
        gate = FitGate(self.limits, self.resources, worker_id)
        skipped: list[TaskRecord] = []
        while len(out) < n and (max_bytes is None or size < max_bytes):
            rec = self.queues.pop_best(worker.queues, gate)
            if rec is None:
                break
            if self.unjournaled and rec.msg.task_id in self.unjournaled:
                skipped.append(rec)  # a tick the journal has not yet: it waits for it
                continue
            if self._past_deadline(rec, now):  # never handed out: it ends EXPIRED
                rec.state = TaskState.DONE  # (out of its queue already)
                self._end_expired(rec)
                continue
            self._lease_to(rec, worker, now)
            msg = self.deps.inputs(rec.msg)  # its dependencies' results go with it
            out.append(msg)
            size += msg.size
        for rec in skipped:
            self.queues.push(rec)  # its place in line is its arrival
        if track and out:
            worker.sent = [msg.task_id for msg in out]
        return out

    def start(self, worker_id: str, task_ids: Iterable[str], now: float | None = None) -> None:
        """A worker's tasks began running: their submitters are told."""
        if now is not None:
            self.now = now
        for task_id in task_ids:
            rec = self.leased.get(task_id)
            if rec is not None and rec.worker == worker_id and not rec.started:
                self._mark_started(rec)

    def complete(self, worker_id: str, results: list[ResultMsg], now: float) -> None:
        """Record outcomes; the first for a task wins, later ones are dropped."""
        self.now = now
        self.history.now = now
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.last_seen = now
        for result in results:
            rec = self.tasks.get(result.task_id)
            if rec is None or rec.state is TaskState.BLOCKED:  # ended, or never handed out
                continue
            if rec.stop_asked:  # whatever it reports: a result that raced the stop is dropped
                self._finish(rec, self.stopped_result(rec, f"worker {worker_id} stopped it",
                                                      result))
                continue
            if result.status is Status.UNLOADABLE:  # it did not run: another worker may
                self._not_loadable(rec, worker_id, result, now)
                continue
            self._unlease(rec)
            if worker is not None:
                worker.done += result.status is Status.OK
                worker.failed += result.status is not Status.OK
            if result.retryable and rec.errors < rec.msg.options.retries:
                self.history.attempt_ended(rec, result, now)
                rec.errors += 1
                if result.trace:  # the next attempt's span links to this one's
                    rec.msg.options = replace(rec.msg.options, trace_prev=result.trace)
                delay = self.backoff(rec.msg.options, rec.errors)
                if delay > 0:
                    self.queues.hold(rec, now + delay)  # holds no worker slot meanwhile
                else:
                    self.queues.push(rec)
                self.changes.updated.append(rec)
                self.changes.leased[rec.msg.task_id] = ""  # queued again: no holder
                continue
            self._finish(rec, result)

    def _not_loadable(self, rec: TaskRecord, worker_id: str, result: ResultMsg,
                      now: float) -> None:
        """A worker could not load the task: it is never handed to that worker again, and
        goes back in its place in line, no attempt used; it fails when no worker is left to
        try (``taskq.master.state.unloadable``). A refusal from a worker that no longer
        holds it (resent after a restart, or from a worker lost meanwhile) is only noted."""
        rec.refused_by = unloadable.note(rec.refused_by, worker_id, result.detail)
        self.changes.updated.append(rec)
        queue = rec.msg.options.queue
        if rec.state is not TaskState.LEASED or rec.worker != worker_id:
            if rec.state is TaskState.PENDING:  # into the heap of its new refusals
                self.queues.remove(rec)
                self.queues.push(rec)
            return
        if unloadable.exhausted(rec.refused_by, queue, self.workers):
            self._finish(rec, replace(result, status=Status.UNLOADABLE, body=None,
                                      detail=unloadable.failure(rec.refused_by, queue)))
            return
        self.history.attempt_ended(rec, replace(result, detail=rec.refused_by[worker_id]), now)
        self._unlease(rec)
        self.queues.push(rec)

    def backoff(self, options: TaskOptions, retry: int) -> float:
        """Seconds before the ``retry``-th retry: ``backoff * 2**(retry-1)``, at most
        ``max_backoff``, drawn uniformly from [0, that] with jitter."""
        if options.backoff <= 0:
            return 0.0
        delay = min(options.backoff * 2 ** (retry - 1), options.max_backoff)
        return self.random.uniform(0, delay) if options.jitter else delay

    def reportable(self, worker_id: str, results: list[ResultMsg], *, resent: bool = False,
                   ) -> tuple[list[ResultMsg], list[ResultMsg]]:
        """Split a worker's results into those it may report (for tasks leased to it now or
        before, restored ones whose holder is not known yet, and ended ones, which
        ``complete`` ignores) and those it may not.

        ``resent``: results a master of another run took before this one restored their
        tasks from the journal. One counts if its task is still at the attempt it ran (else
        the journal had it: the task ended, or went on to a retry); the first outcome wins,
        as always."""
        mine: list[ResultMsg] = []
        refused: list[ResultMsg] = []
        for result in results:
            rec = self.tasks.get(result.task_id)
            if resent:
                ok = rec is not None and rec.state is not TaskState.BLOCKED and \
                    rec.lost + rec.errors == result.attempt
            else:
                ok = (rec is None or rec.worker == worker_id or worker_id in rec.lost_workers
                      or (rec.worker is None and rec.state is TaskState.WAITING))
            (mine if ok else refused).append(result)
        return mine, refused

    def owned_by(self, outbox: str, task_ids: list[str]) -> list[str]:
        """The task ids among these that are not known as another outbox's."""
        return [t for t in task_ids
                if (rec := self.tasks.get(t)) is None or rec.msg.outbox == outbox]

    def promote(self, now: float) -> int:
        """Queue the waiting tasks whose time has come, and the tasks of schedules' ticks
        that are due; returns how many."""
        ticks = self.schedules.due(now + self.wall_offset)
        due = self.queues.due(now)
        for rec in due:
            if rec.stop_asked:  # restored and stopped; no worker claimed it back
                self.end_stopped(rec, "no worker held it after a master restart")
        accepted = self.submit(ticks, now) if ticks else 0
        if self.hold_ticks:
            self.unjournaled.update(m.task_id for m in ticks if m.task_id in self.tasks)
        return len(due) + accepted

    def ticks_journaled(self, task_ids: Iterable[str]) -> None:
        """The journal has these ticks (and their schedules' next runs): they may run."""
        self.unjournaled.difference_update(task_ids)

    def can_lease(self, queues: tuple[str, ...], now: float, worker_id: str = "") -> bool:
        """Would a lease from ``queues`` at ``now`` find a task (limits respected; with
        ``worker_id``, one that worker has not failed to load)?"""
        self.limits.now = now
        gate = unloadable.LoadGate(self.limits, worker_id) if worker_id else self.limits
        where = self.queues.peek_best(queues, gate)
        if where is None:
            return False
        if self.unjournaled:  # the best is a tick the journal has not yet: wait for it
            queue, key = where
            return self.queues.heaps[queue][key][0][3].msg.task_id not in self.unjournaled
        return True

    def next_due(self) -> float | None:
        """When a waiting task or a schedule's tick is next due (on this state's clock)."""
        tick = self.schedules.next_due()
        times = [t for t in (self.queues.next_due(),
                             None if tick is None else tick - self.wall_offset) if t is not None]
        return min(times) if times else None

    # ------------------------------------------------------------------ schedules

    def schedule_add(self, spec: Schedule, now: float) -> bool:
        """Add a schedule, or replace one of the same name (True); ValueError if bad."""
        return self.schedules.add(spec, now + self.wall_offset)

    def schedule_remove(self, name: str) -> bool:
        return self.schedules.remove(name)

    def schedule_pause(self, name: str, paused: bool, now: float) -> bool:
        return self.schedules.pause(name, paused, now + self.wall_offset)

    # ------------------------------------------------------------------ views

    def pending_count(self) -> int:
        return self.queues.pending_count()

    def drain_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        changes.schedules, changes.schedules_removed = self.schedules.drain()
        changes.limits = self.limits.drain()
        changes.joined, changes.unjoined = self.uniques.drain()
        changes.attempts, changes.history_gone, changes.counts = self.history.drain()
        changes.kept, changes.deps_gone = self.deps.drain()
        if self.retained.changes:  # (none for tasks with no TTL: no new dict either)
            changes.retained = self.retained.drain()
        changes.dead, changes.dead_gone = self.dead.drain()
        return changes

    # ------------------------------------------------------------------ internals

    def _lease_to(self, rec: TaskRecord, worker: WorkerInfo, now: float) -> None:
        rec.state = TaskState.LEASED
        rec.worker = worker.worker_id
        rec.deadline = now + self.silence(worker)
        rec.msg.attempt = rec.lost + rec.errors
        self.leased[rec.msg.task_id] = rec
        self._lease_due.add(rec.msg.task_id, rec.deadline)
        self.changes.leased[rec.msg.task_id] = worker.worker_id
        worker.held.add(rec.msg.task_id)
        self.limits.taken(rec)
        self.resources.taken(rec, worker.worker_id)
        self.history.leased(rec, worker, now)

    def _mark_started(self, rec: TaskRecord) -> None:
        rec.started = True
        rec.started_at = self.now
        rec.cancel_asked = False  # too late: its worker answers that it runs
        box = self._outbox(rec.msg.outbox)
        box.running.add(rec.msg.task_id)
        box.to_tell.add(rec.msg.task_id)

    def _unlease(self, rec: TaskRecord) -> None:
        """Take a task out of whichever place it is in (lease or queue); it is then DONE."""
        if rec.state is TaskState.LEASED:
            self.leased.pop(rec.msg.task_id, None)
            self.limits.released(rec)
            self.resources.released(rec)
            holder = self.workers.get(rec.worker or "")
            if holder is not None:
                holder.held.discard(rec.msg.task_id)
                holder.unconfirmed.discard(rec.msg.task_id)
            rec.worker = None
            if rec.started:
                rec.started = False
                box = self._outbox(rec.msg.outbox)
                box.running.discard(rec.msg.task_id)
                box.to_tell.discard(rec.msg.task_id)  # requeued: it does not run now
                box.progressed.discard(rec.msg.task_id)
            rec.cancel_asked = False
            rec.progress, rec.progress_updates, rec.started_at = None, 0, 0.0
            self._watch_expiry(rec)  # back in a queue (or ending): its deadline counts again
        else:
            self.queues.remove(rec)
        rec.state = TaskState.DONE

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None:
        self._unlease(rec)
        self.history.task_ended(rec, rec.msg, result)
        self.dead.ended(rec.msg, result, self.history.wall())
        rec.ended = result.status
        del self.tasks[rec.msg.task_id]
        box = self._deliver(rec.msg.outbox, result)
        box.to_tell.discard(rec.msg.task_id)
        self._retain(rec.msg, result)
        options = rec.msg.options
        if options.unique:
            for outbox, copy in self.uniques.ended(options.unique, rec.msg.task_id, result,
                                                   self.now + options.unique_for, self.now):
                self._deliver(outbox, copy)
        if rec.msg.outbox.startswith(SCHEDULES_OUTBOX) or rec.msg.outbox == CALLBACKS_OUTBOX:
            self.schedules.ended(rec.msg.outbox, rec.msg.task_id, result.status.value)
            while len(box.results) > SCHEDULE_RESULTS_KEPT:  # the oldest go first
                self.changes.acked.append(box.results.pop(next(iter(box.results))).task_id)
        if result.status is Status.OK:
            self.finished_ok += 1
            box.done += 1
        else:
            self.finished_failed += 1
            box.failed += 1
        self._deps_ended(rec, result)
        self._followups(rec, result)

    def _finish_new(self, msg: TaskMsg, detail: str) -> None:
        result = ResultMsg(msg.task_id, Status.REFUSED, detail=detail)
        self.history.task_ended(None, msg, result)
        self._deliver(msg.outbox, result).failed += 1
        self._retain(msg, result)
        self.finished_failed += 1
