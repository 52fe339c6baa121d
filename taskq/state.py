"""The broker's state: queues, leases, workers and outboxes, as a plain object.

No sockets, no threads, no clock: every method takes ``now``. The master's service wraps
one ``BrokerState`` in a lock and a wire; unit and property tests drive it directly.

    submit ──► pending heaps (per queue; priority, then arrival)
                   │ lease(worker, n)
                   ▼
               leased (deadline = now + lost_after, renewed by heartbeats)
          ┌────────┼──────────────┬─────────────────────────┐
    complete(OK)   complete(ERROR) expire: worker silent      release (graceful stop)
          │        retries left?  lost < max? requeue        requeue, no attempt counted
          ▼        requeue : ▼    else LOST result
       outbox[task.outbox] ──► fetch(ack) ──► gone

Every task ends exactly once: in its outbox, or cancelled. Late or duplicate results
for a task that already ended are dropped. What changed is collected in ``changes`` so the
journal can persist it after each call.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from taskq.defaults import BATCH_BYTES
from taskq.wire import ResultMsg, Status, TaskMsg, TaskState


@dataclass(slots=True)
class TaskRecord:
    msg: TaskMsg
    seq: int
    state: TaskState = TaskState.PENDING
    worker: str | None = None
    deadline: float = 0.0
    lost: int = 0  # times it was leased to a worker that was then lost
    errors: int = 0  # times it raised and was retried
    ticket: int = 0  # validates heap entries (lazy deletion)
    lost_workers: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WorkerInfo:
    worker_id: str
    host: str
    pid: int
    procs: int
    queues: tuple[str, ...] = ("default",)
    last_seen: float = 0.0
    running: int = 0
    held: set[str] = field(default_factory=set)
    done: int = 0
    failed: int = 0


@dataclass(slots=True)
class Outbox:
    results: dict[str, ResultMsg] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    open: int = 0  # tasks accepted for this outbox that have not ended yet
    last_seen: float = 0.0  # when its submitter was last in touch (0: not since a restart)


@dataclass(slots=True)
class Changes:
    """What one or more calls changed, for the journal."""

    added: list[TaskRecord] = field(default_factory=list)
    updated: list[TaskRecord] = field(default_factory=list)
    finished: list[tuple[str, ResultMsg]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.finished or self.removed or self.acked)


@dataclass(slots=True)
class CancelOutcome:
    cancelled: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class BrokerState:
    """All of the master's bookkeeping; see the module docstring."""

    def __init__(self, *, lost_after: float, max_lost: int, max_payload: int) -> None:
        self.lost_after = lost_after
        self.max_lost = max_lost
        self.max_payload = max_payload
        self.tasks: dict[str, TaskRecord] = {}
        self.leased: dict[str, TaskRecord] = {}
        self.heaps: dict[str, list[tuple[int, int, int, str]]] = {}
        self.pending_by_queue: Counter[str] = Counter()
        self.workers: dict[str, WorkerInfo] = {}
        self.outboxes: dict[str, Outbox] = {}
        self.finished_ok = 0
        self.finished_failed = 0
        self.changes = Changes()
        self._seq = 0

    # ------------------------------------------------------------------ submitters

    def submit(self, tasks: list[TaskMsg], now: float) -> int:
        """Accept new tasks; ids already known are ignored (resubmits are idempotent)."""
        accepted = 0
        for msg in tasks:
            if msg.task_id in self.tasks or self._has_result(msg.outbox, msg.task_id):
                continue
            box = self._outbox(msg.outbox)
            box.open += 1
            if msg.size > self.max_payload:
                self._finish_new(msg, f"task is {msg.size} bytes, over the master's "
                                      f"--max-payload of {self.max_payload} bytes")
                continue
            self._seq += 1
            rec = TaskRecord(msg=msg, seq=self._seq)
            self.tasks[msg.task_id] = rec
            self._push(rec)
            self.changes.added.append(rec)
            accepted += 1
        return accepted

    def restore_task(self, msg: TaskMsg, seq: int, lost: int, errors: int) -> None:
        """Put back a journaled task (master restart); it is pending again."""
        rec = TaskRecord(msg=msg, seq=seq, lost=lost, errors=errors)
        self.tasks[msg.task_id] = rec
        self._outbox(msg.outbox).open += 1
        self._seq = max(self._seq, seq)
        self._push(rec)

    def restore_result(self, outbox: str, result: ResultMsg) -> None:
        self._outbox(outbox).results[result.task_id] = result

    def fetch(self, outbox: str, ack: list[str], max_n: int) -> list[ResultMsg]:
        """Forget acknowledged results, then hand out up to max_n not yet sent."""
        box = self.outboxes.get(outbox)
        if box is None:
            return []
        for task_id in ack:
            if box.results.pop(task_id, None) is not None:
                self.changes.acked.append(task_id)
            box.sent.discard(task_id)
        out: list[ResultMsg] = []
        size = 0
        if len(box.sent) < len(box.results):
            for task_id, result in box.results.items():
                if len(out) >= max_n or size >= BATCH_BYTES:
                    break
                if task_id not in box.sent:
                    box.sent.add(task_id)
                    out.append(result)
                    size += len(result.body or b"")
        self._maybe_drop_outbox(outbox, box)
        return out

    def has_unsent(self, outbox: str) -> bool:
        box = self.outboxes.get(outbox)
        return box is not None and len(box.sent) < len(box.results)

    def resend(self, outbox: str) -> None:
        """A submitter reconnected: results sent but not acknowledged are sent again."""
        box = self.outboxes.get(outbox)
        if box is not None:
            box.sent.clear()

    def touch(self, outbox: str, now: float) -> None:
        """The outbox's submitter is in touch."""
        box = self.outboxes.get(outbox)
        if box is not None:
            box.last_seen = now

    def drop_abandoned(self, now: float, ttl: float, prefix: str) -> list[str]:
        """Drop the results of outboxes named ``prefix...`` whose submitter has not been in
        touch for ``ttl`` seconds and that wait for no task; returns their names."""
        dropped = []
        for name, box in list(self.outboxes.items()):
            if not name.startswith(prefix) or box.open > 0:
                continue
            if box.last_seen == 0.0:
                box.last_seen = now  # restored from the journal: the clock starts now
            elif now - box.last_seen > ttl:
                self.changes.acked.extend(box.results)
                del self.outboxes[name]
                dropped.append(name)
        return dropped

    def open_count(self, outbox: str) -> int:
        box = self.outboxes.get(outbox)
        return box.open if box is not None else 0

    def cancel(self, task_ids: list[str]) -> CancelOutcome:
        """Remove tasks that have not started; report the ones that already run."""
        out = CancelOutcome()
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is None:
                out.unknown.append(task_id)
            elif rec.state is TaskState.LEASED:
                out.running.append(task_id)
            else:
                self._unlease(rec)
                del self.tasks[task_id]
                self._outbox(rec.msg.outbox).open -= 1
                self.changes.removed.append(task_id)
                out.cancelled.append(task_id)
        return out

    # ------------------------------------------------------------------ workers

    def register(self, info: WorkerInfo, now: float) -> None:
        old = self.workers.get(info.worker_id)
        if old is not None:
            info.held, info.done, info.failed = old.held, old.done, old.failed
        info.last_seen = now
        self.workers[info.worker_id] = info

    def heartbeat(self, worker_id: str, held: list[str], running: int, now: float) -> bool:
        """Renew the worker and the leases it still holds; False if it must register again.

        A held task the master thinks is pending (it restarted, or the lease expired while
        the network was cut) is leased back to this worker rather than run twice.
        """
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_seen = now
        worker.running = running
        deadline = now + self.lost_after
        for task_id in held:
            rec = self.tasks.get(task_id)
            if rec is None:
                continue
            if rec.state is TaskState.PENDING:
                self._unlease(rec)
                self._lease_to(rec, worker, now)
            elif rec.worker == worker_id:
                rec.deadline = deadline
        return True

    def lease(self, worker_id: str, n: int, now: float,
              max_bytes: int | None = None) -> list[TaskMsg]:
        """Hand up to n pending tasks (and about max_bytes of bodies) to a worker."""
        worker = self.workers.get(worker_id)
        if worker is None or n <= 0:
            return []
        worker.last_seen = now
        out: list[TaskMsg] = []
        size = 0
        while len(out) < n and (max_bytes is None or size < max_bytes):
            rec = self._pop_best(worker.queues)
            if rec is None:
                break
            self._lease_to(rec, worker, now)
            out.append(rec.msg)
            size += rec.msg.size
        return out

    def complete(self, worker_id: str, results: list[ResultMsg], now: float) -> None:
        """Record outcomes; the first for a task wins, later ones are dropped."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.last_seen = now
        for result in results:
            rec = self.tasks.get(result.task_id)
            if rec is None:
                continue
            self._unlease(rec)
            if worker is not None:
                worker.done += result.status is Status.OK
                worker.failed += result.status is not Status.OK
            if result.status is Status.ERROR and rec.errors < rec.msg.options.retries:
                rec.errors += 1
                self.changes.updated.append(rec)
                self._push(rec)
                continue
            self._finish(rec, result)

    def release(self, worker_id: str, task_ids: list[str]) -> None:
        """A stopping worker hands back tasks it never started: queued again, no attempt used."""
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state is TaskState.LEASED and rec.worker == worker_id:
                self._unlease(rec)
                self._push(rec)

    def forget_worker(self, worker_id: str) -> None:
        """A worker said goodbye: it holds nothing any more (release first)."""
        self.workers.pop(worker_id, None)

    def expire(self, now: float) -> list[str]:
        """Declare silent workers lost and requeue (or fail) leases past their deadline."""
        lost = [w for w, info in self.workers.items() if now - info.last_seen > self.lost_after]
        for worker_id in lost:
            del self.workers[worker_id]
        for rec in [r for r in self.leased.values()
                    if r.deadline < now or r.worker not in self.workers]:
            lost_worker = rec.worker or "?"
            self._unlease(rec)
            rec.lost += 1
            rec.lost_workers.append(lost_worker)
            if rec.lost >= self.max_lost:
                self._finish(rec, ResultMsg(rec.msg.task_id, Status.LOST, detail=(
                    f"task was handed to a worker {rec.lost} times and each was lost before "
                    f"it finished (workers: {', '.join(rec.lost_workers)})")))
            else:
                self.changes.updated.append(rec)
                self._push(rec)
        return lost

    # ------------------------------------------------------------------ views

    def pending_count(self) -> int:
        return sum(self.pending_by_queue.values())

    def drain_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        return changes

    # ------------------------------------------------------------------ internals

    def _outbox(self, name: str) -> Outbox:
        box = self.outboxes.get(name)
        if box is None:
            box = self.outboxes[name] = Outbox()
        return box

    def _has_result(self, outbox: str, task_id: str) -> bool:
        box = self.outboxes.get(outbox)
        return box is not None and task_id in box.results

    def _maybe_drop_outbox(self, name: str, box: Outbox) -> None:
        if not box.results and box.open <= 0:
            del self.outboxes[name]

    def _push(self, rec: TaskRecord) -> None:
        rec.state = TaskState.PENDING
        rec.ticket += 1
        queue = rec.msg.options.queue
        heap = self.heaps.get(queue)
        if heap is None:
            heap = self.heaps[queue] = []
        heapq.heappush(heap, (-rec.msg.options.priority, rec.seq, rec.ticket, rec.msg.task_id))
        self.pending_by_queue[queue] += 1

    def _pop_best(self, queues: tuple[str, ...]) -> TaskRecord | None:
        best: tuple[int, int, int, str] | None = None
        best_queue = ""
        for queue in queues:
            heap = self.heaps.get(queue)
            while heap and not self._valid(heap[0]):
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best):
                best, best_queue = heap[0], queue
        if best is None:
            return None
        heapq.heappop(self.heaps[best_queue])
        self.pending_by_queue[best_queue] -= 1
        return self.tasks[best[3]]

    def _valid(self, entry: tuple[int, int, int, str]) -> bool:
        rec = self.tasks.get(entry[3])
        return rec is not None and rec.state is TaskState.PENDING and rec.ticket == entry[2]

    def _lease_to(self, rec: TaskRecord, worker: WorkerInfo, now: float) -> None:
        rec.state = TaskState.LEASED
        rec.worker = worker.worker_id
        rec.deadline = now + self.lost_after
        rec.msg.attempt = rec.lost + rec.errors
        self.leased[rec.msg.task_id] = rec
        worker.held.add(rec.msg.task_id)

    def _unlease(self, rec: TaskRecord) -> None:
        """Take a task out of whichever place it is in (lease or queue); it is then DONE."""
        if rec.state is TaskState.LEASED:
            self.leased.pop(rec.msg.task_id, None)
            holder = self.workers.get(rec.worker or "")
            if holder is not None:
                holder.held.discard(rec.msg.task_id)
            rec.worker = None
        elif rec.state is TaskState.PENDING:
            rec.ticket += 1
            self.pending_by_queue[rec.msg.options.queue] -= 1
        rec.state = TaskState.DONE

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None:
        self._unlease(rec)
        del self.tasks[rec.msg.task_id]
        box = self._outbox(rec.msg.outbox)
        box.open -= 1
        box.results[rec.msg.task_id] = result
        self.changes.finished.append((rec.msg.outbox, result))
        if result.status is Status.OK:
            self.finished_ok += 1
        else:
            self.finished_failed += 1

    def _finish_new(self, msg: TaskMsg, detail: str) -> None:
        result = ResultMsg(msg.task_id, Status.REFUSED, detail=detail)
        box = self._outbox(msg.outbox)
        box.open -= 1
        box.results[msg.task_id] = result
        self.changes.finished.append((msg.outbox, result))
        self.finished_failed += 1
