"""Where tasks wait to be leased: a heap per named queue and limit key, and one heap of
waiting tasks.

    push(rec) ──► heaps[queue][limit_key]: (-priority, seq) ──► pop_best(queues, gate) ──►
    hold(rec, t) ──► waiting: (t, seq) ──► due(now) ──► push              leased

Tasks of one queue with different limit keys (or needs, or workers that could not load
them) wait in heaps of their own, so a key (or a queue) at its limit never blocks the
others: ``pop_best`` takes the best task among the heaps the gate lets through (no
head-of-line blocking). Entries are deleted lazily: an entry
is valid while its record is still in the state it was pushed in, with the same ticket
(``remove`` bumps the ticket). Counts are kept exact: per queue, and per queue, limit key and
limit for the tasks that carry a key (what ``taskq.master.state.autoscale`` caps).
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Protocol

from taskq.master.state.records import TaskRecord
from taskq.master.state.resources import heap_key
from taskq.master.state.unloadable import heap_suffix
from taskq.protocol.messages import TaskState

_HeapEntry = tuple[float, int, int, TaskRecord]  # (key, seq, ticket, record); seq is unique


class Gate(Protocol):
    """Which queues and limit keys may lease now (``taskq.master.state.limits``)."""

    def queue_open(self, queue: str) -> bool: ...
    def key_open(self, key: str, limit: int) -> bool: ...


class TaskQueues:
    """The pending heaps, per queue, and the waiting heap; see the module docstring."""

    def __init__(self) -> None:
        self.heaps: dict[str, dict[str, list[_HeapEntry]]] = {}  # queue -> limit key -> heap
        self.pending_by_queue: Counter[str] = Counter()
        self.keyed: Counter[tuple[str, str, int]] = Counter()  # (queue, limit key, limit)
        self.waiting: list[_HeapEntry] = []
        self.waiting_count = 0

    def pending_count(self) -> int:
        return sum(self.pending_by_queue.values())

    def push(self, rec: TaskRecord) -> None:
        """Queue a task to be leased: higher priority first, then first come."""
        rec.state = TaskState.PENDING
        rec.ticket += 1
        options = rec.msg.options
        queue = options.queue
        key = heap_key(options.limit_key, options.resources)
        if rec.refused_by:  # apart from those some worker could load (state.unloadable)
            key += heap_suffix(rec.refused_by)
        heap = self.heaps.setdefault(queue, {}).setdefault(key, [])
        heapq.heappush(heap, (-options.priority, rec.seq, rec.ticket, rec))
        self.pending_by_queue[queue] += 1
        if options.limit_key:
            self.keyed[queue, options.limit_key, options.limit] += 1

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
            self._left(rec)
        elif rec.state is TaskState.WAITING:
            self.waiting_count -= 1
        else:
            return
        rec.ticket += 1

    def pop_best(self, queues: tuple[str, ...], gate: Gate | None = None) -> TaskRecord | None:
        """Remove and return the next task to lease from any of ``queues`` that the gate
        (when there is one) lets through."""
        found = self.peek_best(queues, gate)
        if found is None:
            return None
        queue, key = found
        heap = self.heaps[queue][key]
        rec = heapq.heappop(heap)[3]
        if not heap:
            del self.heaps[queue][key]
        self._left(rec)
        rec.ticket += 1
        return rec

    def _left(self, rec: TaskRecord) -> None:
        """A pending task left its queue: the counts go down."""
        options = rec.msg.options
        self.pending_by_queue[options.queue] -= 1
        if options.limit_key:
            where = (options.queue, options.limit_key, options.limit)
            self.keyed[where] -= 1
            if not self.keyed[where]:
                del self.keyed[where]

    def peek_best(self, queues: tuple[str, ...],
                  gate: Gate | None = None) -> tuple[str, str] | None:
        """(queue, limit key) of the heap holding the next task to lease, or None."""
        best: _HeapEntry | None = None
        where: tuple[str, str] | None = None
        empty: list[tuple[str, str]] = []
        for queue in queues:
            keyed = self.heaps.get(queue)
            if not keyed or (gate is not None and not gate.queue_open(queue)):
                continue
            for key, heap in keyed.items():
                while heap and not _valid(heap[0], TaskState.PENDING):
                    heapq.heappop(heap)
                if not heap:
                    empty.append((queue, key))
                    continue
                top = heap[0]
                if gate is not None and not _lets(gate, top[3]):
                    continue
                if best is None or top[:3] < best[:3]:
                    best, where = top, (queue, key)
        for queue, key in empty:
            del self.heaps[queue][key]
        return where

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
        return [e[3] for heap in self.heaps.get(queue, {}).values() for e in heap
                if _valid(e, TaskState.PENDING)]


def _lets(gate: Gate, rec: TaskRecord) -> bool:
    """Does the gate let the task at the top of a heap through (and with it, the heap)?"""
    options = rec.msg.options
    if options.limit_key and not gate.key_open(options.limit_key, options.limit):
        return False
    fits = getattr(gate, "fits", None)  # only a worker's gate knows its resources
    if options.resources and fits is not None and not fits(options.resources):
        return False
    refused = rec.refused_by  # the same for every task of this heap
    loads = getattr(gate, "loads", None) if refused else None  # and whom it refused
    return loads is None or bool(loads(refused))


def _valid(entry: _HeapEntry, state: TaskState) -> bool:
    rec = entry[3]
    return rec.state is state and rec.ticket == entry[2]
