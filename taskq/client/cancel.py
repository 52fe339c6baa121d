"""``Client.cancel``: cancel tasks by future or id, stopping running ones on any host.

    cancel(f | id | [...], running=True)
        ├─ not sent yet ──────────────────────────► dropped here: CANCELLED
        ├─ its future already done ───────────────► ENDED (False)
        └─ the rest, in one call: master.cancel(ids, running=True)
              queued ──► CANCELLED at once      leased or running ──► STOPPING: its worker
              ended ──► ENDED                     drops or kills it; the future then fails
              not this client's, or no such task ──► UNKNOWN     with taskq.TaskCancelled

With ``running=False`` it is ``future.cancel()`` for many: RUNNING for a task that began.
A stop is final once answered: it is journaled on the master, and the task ends CANCELLED
even if its worker is cut off (when it comes back, or when its lease expires), and even if
it finished in the meantime (the result that raced the stop is dropped). It is never retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from taskq.client.future import TaskFuture
from taskq.protocol.api import BrokerAPI


class CancelResult(StrEnum):
    """What a cancel did to one task."""

    CANCELLED = "cancelled"  # it never runs (its future is cancelled now)
    STOPPING = "stopping"  # it ran: it is being stopped, and ends CANCELLED
    RUNNING = "running"  # running=False, and it began: not cancelled
    ENDED = "ended"  # it had ended: nothing to cancel
    UNKNOWN = "unknown"  # no such task of this client

    def __bool__(self) -> bool:
        return self in (CancelResult.CANCELLED, CancelResult.STOPPING)


Target = TaskFuture[Any] | str


def _ids(target: Target | Iterable[Target]) -> tuple[list[str], bool]:
    """The task ids a cancel names, and whether it named a single one."""
    single = isinstance(target, TaskFuture | str)
    items = [target] if single else list(target)  # type: ignore[arg-type]
    ids = []
    for item in items:
        if isinstance(item, TaskFuture):
            ids.append(item.task_id)
        elif isinstance(item, str) and item:
            ids.append(item)
        else:
            raise ValueError(f"bad task {item!r}: expected a TaskFuture or a task id string")
    return ids, single


class CancelCalls:
    """The cancel half of ``taskq.Client`` (which provides what is declared here)."""

    _lock: Any
    _entries: dict[str, Any]
    _remote: BrokerAPI
    outbox: str

    def _cancel_ids(self, task_ids: list[str]) -> set[str]:  # pragma: no cover
        raise NotImplementedError

    def cancel(self, target: Target | Iterable[Target], *, running: bool = True,
               ) -> bool | dict[str, CancelResult]:
        """Cancel tasks of this client, given as futures or task ids: with ``running``
        (the default) a task that already runs is stopped on whichever worker runs it
        (its process is killed and replaced; on a thread pool its result is CANCELLED at
        once, its thread runs on); with ``running=False`` it is ``future.cancel()``.

        For one future or id: True if it never runs or is being stopped (its future then
        fails with ``taskq.TaskCancelled``), False if it ended (or is not this client's).
        For a list: each task id -> a ``CancelResult``, which is truthy as that bool is."""
        ids, single = _ids(target)
        results = self._cancel_by_id(ids, running)
        return bool(results[ids[0]]) if single else results

    def _cancel_by_id(self, ids: list[str], running: bool) -> dict[str, CancelResult]:
        with self._lock:
            entries = {t: self._entries.get(t) for t in ids}
        out: dict[str, CancelResult] = {}
        ask: list[str] = []
        for task_id, entry in entries.items():
            if entry is not None and entry.future.done():
                out[task_id] = CancelResult.CANCELLED if entry.future.cancelled() \
                    else CancelResult.ENDED
            elif running or entry is not None:
                ask.append(task_id)
            else:
                out[task_id] = CancelResult.UNKNOWN
        if running:
            out.update(self._stop(ask))
        else:
            never = self._cancel_ids(ask)
            for task_id in ask:
                self._settle_cancel(entries[task_id], task_id in never, out, task_id)
        return {t: out[t] for t in ids}

    def _settle_cancel(self, entry: Any, cancelled: bool, out: dict[str, CancelResult],
                       task_id: str) -> None:
        if cancelled:
            entry.future._mark_cancelled()
            out[task_id] = CancelResult.CANCELLED
        elif entry.future.done():
            out[task_id] = CancelResult.CANCELLED if entry.future.cancelled() \
                else CancelResult.ENDED
        else:
            entry.future._begin()
            out[task_id] = CancelResult.RUNNING

    def _stop(self, task_ids: list[str]) -> dict[str, CancelResult]:
        """Stop tasks wherever they are: the unsent ones here, the others on the master."""
        with self._lock:
            entries = {t: self._entries.get(t) for t in task_ids}
        unsent = [t for t, e in entries.items() if e is not None and not e.sent]
        out = {t: CancelResult.CANCELLED for t in self._cancel_ids(unsent)}
        sent = [t for t in task_ids if t not in out]
        if sent:
            told = self._remote.cancel(sent, outbox=self.outbox, running=True)
            for task_id in told.cancelled:
                out[task_id] = CancelResult.CANCELLED
            out.update(dict.fromkeys(told.stopping, CancelResult.STOPPING))
            out.update(dict.fromkeys(told.ended, CancelResult.ENDED))
        with self._lock:
            for task_id, result in out.items():
                if result is CancelResult.CANCELLED:
                    self._entries.pop(task_id, None)
        for task_id, entry in entries.items():
            if entry is not None and out.get(task_id) is CancelResult.CANCELLED:
                entry.future._mark_cancelled()
        return {t: out.get(t, CancelResult.UNKNOWN) for t in task_ids}
