"""How many workers each queue could use now: the autoscaling target that ``/metrics``
exports as ``taskq_desired_workers{queue=...}`` (Dask's adaptive target, for taskq).

    leased(q) ─────────────────────────────────────────────┐
    queued(q) without a limit key ─────────────────────────┼─► slots ─► min(concurrency(q))
    queued(q) with key k: at most limit(k) - leased(k) ────┘                  │
    size(q): --procs/--concurrency of the last worker that served q ─► ceil(slots / size(q))

"Runnable now" is what a lease could hand out at once: tasks queued in ``q`` (not those held
back until a time, nor those blocked on their dependencies) and those leased already. A
limit key caps its tasks at its limit less what runs under it (counted per queue: a key
shared by two queues is counted in each). The queue's concurrency limit caps the whole; its
rate limit does not (a rate says how many start a second, not how many run at once). A
queue no worker ever served counts one task per worker, so a scaler starting from zero
gets a first worker whose size then corrects the figure.
"""

from __future__ import annotations

from taskq.master.state.limits import Limits
from taskq.master.state.queues import TaskQueues

DEFAULT_QUEUE = "default"  # always reported: a scaler's query has a series before any task


class WorkerSizes:
    """The size (tasks it runs at once) of the last worker that served each queue."""

    def __init__(self) -> None:
        self.by_queue: dict[str, int] = {}

    def seen(self, procs: int, queues: tuple[str, ...]) -> None:
        for queue in queues:
            self.by_queue[queue] = max(1, procs)

    def size(self, queue: str) -> int:
        return self.by_queue.get(queue, 1)


def slots(queue: str, queues: TaskQueues, limits: Limits) -> int:
    """Tasks of ``queue`` that could run at once now: leased, plus queued within limits."""
    keyed = 0
    free: dict[str, int] = {}  # limit key -> how many more of its tasks may be leased
    wanting: dict[str, int] = {}  # limit key -> its queued tasks in this queue
    for (name, key, cap), n in queues.keyed.items():
        if name != queue:
            continue
        keyed += n
        room = max(0, max(cap, 1) - limits.running_by_key[key])
        free[key] = max(free.get(key, 0), room)
        wanting[key] = wanting.get(key, 0) + n
    runnable = queues.pending_by_queue[queue] - keyed
    runnable += sum(min(n, free[key]) for key, n in wanting.items())
    if queue in limits.paused:  # its queued tasks wait for a resume, not for workers
        runnable = 0
    total = limits.running_by_queue[queue] + runnable
    limit = limits.by_queue.get(queue)
    if limit is not None and limit.concurrency:
        total = min(total, limit.concurrency)
    return total


def desired_workers(queues: TaskQueues, limits: Limits, sizes: WorkerSizes) -> dict[str, int]:
    """Per queue known to the master, the workers that would run all it could run now."""
    names = {DEFAULT_QUEUE, *queues.pending_by_queue, *limits.running_by_queue,
             *limits.by_queue, *sizes.by_queue}
    return {q: -(-slots(q, queues, limits) // sizes.size(q)) for q in sorted(names)}
