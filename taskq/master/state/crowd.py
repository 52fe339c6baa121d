"""The connected workers: who they are, how many processes serve each queue, and when each
is next looked at for silence; and ``Due``, the lazy deadline heap the reaper reads (for
workers here, and for leases in the state). Nothing here costs more as the crowd grows than
a look-up and a heap step.

    add(info, check_at) ──► workers[id]; procs_by_queue[q] += info.procs; due.add(id, check_at)
    overdue(now, silence) ──► due.pop(now, ...): a worker silent longer than silence(worker)
                              is returned; one heard from since goes back on the heap at
                              last_seen + silence (calls that renew a worker only set its
                              last_seen: no heap step on the hot path)
    remove(id) ──► the worker and its processes' count go (its entry is dropped when due)
    share(worker, pending_by_queue) ──► its fair part of what its queues hold
    held_matches(worker, digest) ──► does a beat's digest of what the worker holds match
                              ours (with or without the leases still on their way to it)?
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping

from taskq.master.state.records import WorkerInfo
from taskq.protocol.messages import held_digest


class Due:
    """Keys to look at when their time comes. ``pop`` asks for each due key's current time
    (None: gone): a time still to come puts it back, lazily, so a deadline that moves later
    costs nothing until it was due; one that moves sooner is added again (``add``)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._at: dict[str, float] = {}  # each key's earliest entry (later ones are stale)

    def add(self, key: str, when: float) -> None:
        """Look at ``key`` no later than ``when`` (and then put it back for its time, if that
        is still to come): a new entry only if it is sooner than the one on the heap."""
        at = self._at.get(key)
        if at is None or when < at:
            self._at[key] = when
            heapq.heappush(self._heap, (when, key))

    def pop(self, now: float, time_of: Callable[[str], float | None]) -> list[str]:
        """The keys whose time (``time_of(key)``) is before ``now``; they leave the heap."""
        out: list[str] = []
        heap, at = self._heap, self._at
        while heap and heap[0][0] < now:
            entry, key = heapq.heappop(heap)
            if at.get(key) != entry:  # a sooner entry of the key replaced this one
                continue
            when = time_of(key)
            if when is not None and when >= now:
                at[key] = when
                heapq.heappush(heap, (when, key))
                continue
            del at[key]
            if when is not None:
                out.append(key)
        return out

    def __len__(self) -> int:
        """The keys on the heap (each once, however many stale entries it left)."""
        return len(self._at)


class Crowd:
    """The workers by id, with per-queue process counts and a heap of silence checks."""

    def __init__(self) -> None:
        self.workers: dict[str, WorkerInfo] = {}
        self.procs_by_queue: Counter[str] = Counter()
        self._due = Due()

    def add(self, info: WorkerInfo, check_at: float) -> None:
        """A worker (re)registered: it replaces any entry of the same id."""
        self.remove(info.worker_id)
        self.workers[info.worker_id] = info
        for queue in set(info.queues):
            self.procs_by_queue[queue] += info.procs
        self._due.add(info.worker_id, check_at)

    def remove(self, worker_id: str) -> WorkerInfo | None:
        info = self.workers.pop(worker_id, None)
        if info is not None:
            for queue in set(info.queues):
                self.procs_by_queue[queue] -= info.procs
                if self.procs_by_queue[queue] <= 0:
                    del self.procs_by_queue[queue]
        return info

    def check(self, worker_id: str, when: float) -> None:
        """Look at this worker's silence no later than ``when`` (its deadline came sooner)."""
        self._due.add(worker_id, when)

    def overdue(self, now: float, silence: Callable[[WorkerInfo], float]) -> list[str]:
        """The workers silent for longer than ``silence(worker)`` at ``now`` (still listed:
        the caller removes them). Only the entries whose time came are looked at."""
        def until(worker_id: str) -> float | None:
            info = self.workers.get(worker_id)
            return None if info is None else info.last_seen + silence(info)
        return self._due.pop(now, until)

    def share(self, worker: WorkerInfo, pending_by_queue: Mapping[str, int]) -> int:
        """This worker's part of what waits in its queues, each queue split by processes
        among the workers that serve it (rounded up)."""
        part = 0.0
        for queue in set(worker.queues):
            pending = pending_by_queue.get(queue, 0)
            if pending > 0:
                part += pending * worker.procs / max(1, self.procs_by_queue[queue])
        return -int(-part // 1)

    @staticmethod
    def held_matches(worker: WorkerInfo, digest: int) -> bool:
        """Whether a worker holds what it is leased, by its digest: all of it, or all but
        the last batch, still on its way (``WorkerInfo.sent``)."""
        if digest == held_digest(worker.held):
            return True
        return bool(worker.sent) and digest == held_digest(worker.held.difference(worker.sent))
