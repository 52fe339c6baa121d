"""The workers' parked ``take`` calls, grouped by what their workers can run, so that work
queued on a queue wakes only takes that could lease it::

    submit (n tasks on queue q) ──► Takers.wake(n, {q}) ──► each group serving q: notify(n)
    tasks queued again, a limit with room again (any queue) ──► wake(n) / wake_all()
    take finds nothing to lease ──► parks on Takers.signal(worker): its group's Signal
    a cancel request for a worker, a report that frees room ──► wake_workers([id]): its take

A group is the workers with the same queues and declared resources: a woken take of one
could lease what woke it as well as any other's. A take that waits long (the worker asks
for PARKED_POLL_MAX_S) is then no slower to start a task: it is woken by the work itself.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from taskq.master.state import WorkerInfo
from taskq.net import serving

_Group = tuple[tuple[str, ...], tuple[tuple[str, float], ...]]


class Takers:
    """The groups' signals, on the broker's lock (every method is called with it held)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._groups: dict[_Group, serving.Signal] = {}

    def signal(self, worker: WorkerInfo | None) -> serving.Signal:
        """What this worker's take waits on."""
        key: _Group = ((), ()) if worker is None else (worker.queues, worker.resources)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = serving.Signal(self._lock)
        return group

    def wake(self, n: int, queues: Collection[str] | None = None) -> None:
        """Wake up to ``n`` takes in each group serving one of ``queues`` (None: any)."""
        for (served, _), group in self._groups.items():
            if queues is None or any(q in queues for q in served):
                group.notify(n)

    def wake_worker(self, worker_id: str) -> None:
        """Wake this worker's own take, wherever it waits (it joined again: a take parked
        while the master did not know it waits in the group of no queue)."""
        self.wake_workers([worker_id])

    def wake_workers(self, worker_ids: Collection[str]) -> None:
        """Wake these workers' own takes (a cancel request for them, room in their pool)."""
        if worker_ids:
            for group in self._groups.values():
                group.notify_keys(worker_ids)

    def wake_all(self) -> None:
        for group in self._groups.values():
            group.notify_all()
