"""Which units of its resources a worker gives each task: the master only counts amounts
(``taskq.master.state.resources``); the worker numbers them, so a task with ``gpu=1`` on a worker
with ``gpu=2`` gets unit 0 or 1, and ``CUDA_VISIBLE_DEVICES`` names it.

    lease (needs) ──► assign(task_id, needs) ──► {"gpu": [1], "ram_gb": 16.0} ──► the task
    outcome, hand-back, cancel ──► free(task_id)
"""

from __future__ import annotations

import threading

Needs = tuple[tuple[str, float], ...]


class Units:
    """The numbered units of each whole resource, and the tasks holding them."""

    def __init__(self, capacity: Needs) -> None:
        self._free: dict[str, list[int]] = {
            name: list(range(int(amount))) for name, amount in capacity
            if float(amount).is_integer()}
        self._held: dict[str, dict[str, list[int]]] = {}
        self._lock = threading.Lock()

    def assign(self, task_id: str, needs: Needs) -> dict[str, list[int] | float]:
        """The units a task gets: the lowest free numbers of each whole resource (the
        master leases only what fits, so they are free), else its amount."""
        out: dict[str, list[int] | float] = {}
        with self._lock:
            taken: dict[str, list[int]] = {}
            for name, amount in needs:
                free = self._free.get(name)
                if free is None or not amount.is_integer() or len(free) < amount:
                    out[name] = amount
                    continue
                free.sort()
                got, self._free[name] = free[:int(amount)], free[int(amount):]
                out[name] = taken[name] = got
            if taken:
                self._held[task_id] = taken
        return out

    def free(self, task_ids: list[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                for name, units in self._held.pop(task_id, {}).items():
                    self._free[name].extend(units)
