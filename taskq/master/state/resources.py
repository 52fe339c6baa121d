"""Resources, kept by the master: what each worker declares (``--resources gpu=2``), what
its leased tasks hold, and whether a task's needs (``resources={"gpu": 1}``) fit.

Pure. A task holds its needs from its lease to its end (or requeue), so a worker with
``gpu=2`` never holds more than two one-GPU tasks, whatever its pool size::

    register(worker, capacity) ── lease: fits(worker, need)? ──► taken(rec, worker)
    end / requeue / lost ──► released(rec)          forget(worker) when it leaves
    never_fits(need): no connected worker has that much of each (``taskq status``)

``taskq.master.state.queues`` keeps tasks with needs in heaps of their own (keyed by the needs),
so a task that does not fit a worker never blocks the tasks behind it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskq.master.state.records import TaskRecord
from taskq.protocol.messages import TaskState

Needs = tuple[tuple[str, float], ...]  # sorted (name, amount) pairs, each amount > 0

def heap_key(limit_key: str, needs: Needs) -> str:
    """The heap a task waits in: its limit key, and its needs when it has any."""
    if not needs:
        return limit_key
    return limit_key + "\x1f" + ",".join(f"{n}={a:g}" for n, a in needs)


class Resources:
    """Capacities of the workers and what their leased tasks hold."""

    def __init__(self) -> None:
        self.capacity: dict[str, dict[str, float]] = {}  # worker -> name -> amount
        self.used: dict[str, dict[str, float]] = {}  # worker -> name -> amount held
        self.held: dict[str, tuple[str, Needs]] = {}  # task -> (worker, needs)

    def register(self, worker_id: str, capacity: Needs) -> None:
        self.capacity[worker_id] = dict(capacity)
        self.used.setdefault(worker_id, {})

    def forget(self, worker_id: str) -> None:
        """A worker left (its tasks were released first)."""
        self.capacity.pop(worker_id, None)
        self.used.pop(worker_id, None)

    def fits(self, worker_id: str, needs: Needs) -> bool:
        """Does the worker have ``needs`` free now?"""
        if not needs:
            return True
        capacity = self.capacity.get(worker_id, {})
        used = self.used.get(worker_id, {})
        return all(capacity.get(name, 0.0) - used.get(name, 0.0) >= amount
                   for name, amount in needs)

    def taken(self, rec: TaskRecord, worker_id: str) -> None:
        needs = rec.msg.options.resources
        if needs:
            self.held[rec.msg.task_id] = (worker_id, needs)
            used = self.used.setdefault(worker_id, {})
            for name, amount in needs:
                used[name] = used.get(name, 0.0) + amount

    def released(self, rec: TaskRecord) -> None:
        held = self.held.pop(rec.msg.task_id, None)
        if held is None:
            return
        worker_id, needs = held
        used = self.used.get(worker_id)
        if used is not None:
            for name, amount in needs:
                used[name] = used.get(name, 0.0) - amount

    def never_fits(self, needs: Needs) -> bool:
        """No connected worker has that much of each (False with no worker at all: one
        may yet come)."""
        if not needs or not self.capacity:
            return False
        return not any(all(cap.get(name, 0.0) >= amount for name, amount in needs)
                       for cap in self.capacity.values())


class FitGate:
    """The limits' gate, narrowed to the tasks that fit one worker's free resources (and
    that it has not failed to load)."""

    def __init__(self, limits: object, resources: Resources, worker_id: str) -> None:
        self._limits, self._resources, self._worker = limits, resources, worker_id

    def queue_open(self, queue: str) -> bool:
        return bool(self._limits.queue_open(queue))  # type: ignore[attr-defined]

    def key_open(self, key: str, limit: int) -> bool:
        return bool(self._limits.key_open(key, limit))  # type: ignore[attr-defined]

    def fits(self, needs: Needs) -> bool:
        return self._resources.fits(self._worker, needs)

    def loads(self, refused: dict[str, str]) -> bool:
        """Has the worker not failed to load such a task (``state.unloadable``)?"""
        return self._worker not in refused


def describe(needs: Needs) -> str:
    """``(("gpu", 4.0),)`` -> ``"gpu=4"``."""
    return ",".join(f"{name}={amount:g}" for name, amount in needs)


def unfit(heaps: dict[str, dict[str, list[Any]]], resources: Resources) -> dict[str, int]:
    """Queued tasks that no connected worker could ever fit, counted by their needs."""
    out: Counter[str] = Counter()
    for keyed in heaps.values():
        for key, heap in keyed.items():
            if "\x1f" not in key:
                continue
            for _, _, ticket, rec in heap:
                needs = rec.msg.options.resources
                if (rec.ticket == ticket and rec.state is TaskState.PENDING
                        and resources.never_fits(needs)):
                    out[describe(needs)] += 1
    return dict(out)
