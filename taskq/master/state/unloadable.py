"""Tasks a worker could not load: which workers could not, why, and when none is left.

Pure. A worker whose pool cannot load a task (its module does not import there) reports
it ``Status.UNLOADABLE``; the task is queued again in its place in line, and no worker
that could not load it is leased it again. It fails, UNLOADABLE, only when every connected
worker serving its queue has tried, or MAX_LOAD_REFUSALS distinct workers have::

    report(UNLOADABLE) ──► rec.refused_by[worker] = why ──► exhausted? ── yes ──► ends
                                                                │ no      UNLOADABLE, naming
                                                                ▼         each worker and why
                       queued again, in a heap of its own (heap_suffix): a lease's gate
                       (``loads``) skips the heaps of tasks its worker could not load

The refusals live on the task record and in the journal (the task's ``unloadable`` column),
so a restarted master does not hand the task back to a worker that already failed it.
Trying does not use a retry, nor count as an attempt of the function (it never ran).
"""

from __future__ import annotations

from collections.abc import Mapping

from taskq.defaults import MAX_LOAD_REFUSALS
from taskq.master.state.records import WorkerInfo

Refusals = dict[str, str]  # worker id -> why it could not load the task (one line)

_SEP = "\x1e"  # after a heap's limit key and needs (``resources.heap_key``)


def heap_suffix(refused: Refusals | None) -> str:
    """What sets apart the heap of tasks that these workers could not load ("" none)."""
    return _SEP + ",".join(sorted(refused)) if refused else ""


def reason(worker_id: str, detail: str) -> str:
    """A refusal as one line: ``worker W could not import m: No module named 'm'``."""
    first = detail.strip().splitlines()[0] if detail.strip() else "could not load the task"
    return f"worker {worker_id} {first}"


def note(refused: Refusals | None, worker_id: str, detail: str) -> Refusals:
    """``refused`` with this worker's refusal added (a new dict: the old one may be shared
    with a journal write in flight)."""
    return {**(refused or {}), worker_id: reason(worker_id, detail)}


def serving(queue: str, workers: Mapping[str, WorkerInfo]) -> list[str]:
    """The connected workers that serve ``queue``."""
    return [w for w, info in workers.items() if queue in info.queues]


def exhausted(refused: Refusals, queue: str, workers: Mapping[str, WorkerInfo]) -> bool:
    """No worker is left to try: every connected worker of the queue could not load it,
    or MAX_LOAD_REFUSALS workers could not."""
    return len(refused) >= MAX_LOAD_REFUSALS or all(
        w in refused for w in serving(queue, workers))


def failure(refused: Refusals, queue: str) -> str:
    """The final error: which workers tried, and why each could not."""
    n = len(refused)
    return (f"no worker serving queue {queue!r} could load the task ({n} worker"
            f"{'s' * (n != 1)} tried: {', '.join(refused)}): {'; '.join(refused.values())}")


def blocker(refused: Refusals | None, queue: str, serving_now: list[str]) -> str | None:
    """Why a queued task waits although workers serve its queue: each of them could not
    load it (for ``taskq explain``); None when one that has not tried is connected."""
    if not refused or not serving_now or any(w not in refused for w in serving_now):
        return None
    return (f"every worker serving {queue!r} now could not load it: it waits for another "
            f"(start one where its module imports)")


def note_line(refused: Refusals | None) -> str | None:
    """The refusals so far, as one line for ``taskq explain`` (None: none)."""
    if not refused:
        return None
    n = len(refused)
    return (f"{n} worker{'s' * (n != 1)} could not load it, and {'is' if n == 1 else 'are'} "
            f"not handed it again: {'; '.join(refused.values())}")


class LoadGate:
    """The limits' gate (``queues.Gate``), narrowed to the tasks one worker has not failed
    to load: would a take of this worker find a task? (A lease's ``FitGate`` does the
    same, and checks the worker's free resources too.)"""

    def __init__(self, limits: object, worker_id: str) -> None:
        self._limits, self._worker = limits, worker_id

    def queue_open(self, queue: str) -> bool:
        return bool(self._limits.queue_open(queue))  # type: ignore[attr-defined]

    def key_open(self, key: str, limit: int) -> bool:
        return bool(self._limits.key_open(key, limit))  # type: ignore[attr-defined]

    def loads(self, refused: Refusals) -> bool:
        return self._worker not in refused
