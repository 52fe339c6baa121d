"""Progress from inside a task: ``taskq.report_progress(done, total, message)``.

A call checks its values and hands them to this process's *sink*, which only keeps the
latest value per task; the worker sends what changed with its next heartbeat, so however
often a task reports, at most one update per task and heartbeat reaches the master::

    task code ── report_progress ──► sink: the latest value, nothing sent
                                        ├─ pool process: its shared slot (pool_progress)
                                        └─ thread / asyncio pool: a dict in the worker
    worker heartbeat (every second) ── what changed ──► master: TaskRecord.progress
    client fetch ◄── Fetched.progress ◄── master  ──► future.progress

The master keeps only the last progress of a running task, in memory: it is transient,
not journaled (after a master restart a task shows none until it reports again).
"""

from __future__ import annotations

from collections.abc import Callable

from taskq.protocol.progress import Progress, check
from taskq.worker.context import current_task

Sink = Callable[[str, Progress], None]
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    """Where this process's tasks' progress goes (set by the pool that runs them)."""
    global _sink
    _sink = sink


def report_progress(done: float, total: float | None = None,
                    message: str | None = None) -> None:
    """Tell how far the running task got: ``done`` of ``total`` (None: unknown), with an
    optional message. Cheap: only the latest value is kept and sent with the worker's
    next heartbeat, so calling it in a tight loop is fine. ``future.progress`` on the
    client, ``taskq status --job`` and ``taskq results --wait`` show it.

    RuntimeError outside a task; ValueError for a negative or non-finite number, or a
    ``total`` below ``done``."""
    task_id = current_task().task_id
    if not task_id:
        raise RuntimeError("taskq.report_progress() was called outside a task: call it from "
                           "the code of a task running on a taskq worker")
    progress = check(done, total, message)
    sink = _sink
    if sink is not None:
        sink(task_id, progress)
