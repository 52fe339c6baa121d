"""Where tasks wait to be leased: one heap per named queue, and one heap of waiting tasks.

    push(rec) ──► heaps[queue]: (-priority, seq) ──► pop_best(queues) ──► leased
    hold(rec, t) ──► waiting: (t, seq) ──► due(now) ──► push

Entries are deleted lazily: an entry is valid while its record is still in the state it was
pushed in, with the same ticket (``remove`` bumps the ticket). Counts are kept exact.
"""

from __future__ import annotations

import heapq
from collections import Counter

from taskq.state.records import TaskRecord
from taskq.wire import TaskState

_Entry = tuple[float, int, int, TaskRecord]  # (key, seq, ticket, record); seq is unique


class TaskQueues:
    """The pending heaps, per queue, and the waiting heap; see the module docstring."""

    def __init__(self) -> None:
        self.heaps: dict[str, list[_Entry]] = {}
        self.pending_by_queue: Counter[str] = Counter()
        self.waiting: list[_Entry] = []
        self.waiting_count = 0

    def pending_count(self) -> int:
        return sum(self.pending_by_queue.values())

    def push(self, rec: TaskRecord) -> None:
        """Queue a task to be leased: higher priority first, then first come."""
        rec.state = TaskState.PENDING
        rec.ticket += 1
        queue = rec.msg.options.queue
        heap = self.heaps.get(queue)
        if heap is None:
            heap = self.heaps[queue] = []
        heapq.heappush(heap, (-rec.msg.options.priority, rec.seq, rec.ticket, rec))
        self.pending_by_queue[queue] += 1

    def hold(self, rec: TaskRecord, not_before: float) -> None:
        """Keep a task back until ``not_before``."""
        rec.state = TaskState.WAITING
        rec.ticket += 1
        rec.not_before = not_before
        heapq.heappush(self.waiting, (not_before, rec.seq, rec.ticket, rec))
        self.waiting_count += 1

    def remove(self, rec: TaskRecord) -> None:
        """Take a pending or waiting task out (its entry goes stale)."""
        if rec.state is TaskState.PENDING:
            self.pending_by_queue[rec.msg.options.queue] -= 1
        elif rec.state is TaskState.WAITING:
            self.waiting_count -= 1
        else:
            return
        rec.ticket += 1

    def pop_best(self, queues: tuple[str, ...]) -> TaskRecord | None:
        """Remove and return the next task to lease from any of ``queues``."""
        best: _Entry | None = None
        best_queue = ""
        for queue in queues:
            heap = self.heaps.get(queue)
            while heap and not _valid(heap[0], TaskState.PENDING):
                heapq.heappop(heap)
            if heap and (best is None or heap[0][:3] < best[:3]):
                best, best_queue = heap[0], queue
        if best is None:
            return None
        heapq.heappop(self.heaps[best_queue])
        self.pending_by_queue[best_queue] -= 1
        rec = best[3]
        rec.ticket += 1
        return rec

    def due(self, now: float) -> list[TaskRecord]:
        """Move every waiting task whose time has come to its queue; returns them."""
        out = []
        waiting = self.waiting
        while waiting:
            entry = waiting[0]
            if _valid(entry, TaskState.WAITING):
                if entry[0] > now:
                    break
                self.waiting_count -= 1
                self.push(entry[3])
                out.append(entry[3])
            heapq.heappop(waiting)
        return out

    def next_due(self) -> float | None:
        """When the earliest waiting task is due (None: none waits)."""
        waiting = self.waiting
        while waiting and not _valid(waiting[0], TaskState.WAITING):
            heapq.heappop(waiting)
        return waiting[0][0] if waiting else None

    def valid_pending(self, queue: str) -> list[TaskRecord]:
        """The tasks pending in a queue (for checks and views, not the hot path)."""
        return [e[3] for e in self.heaps.get(queue, []) if _valid(e, TaskState.PENDING)]


def _valid(entry: _Entry, state: TaskState) -> bool:
    rec = entry[3]
    return rec.state is state and rec.ticket == entry[2]
