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

import threading
import time
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from taskq import defaults
from taskq.client.deps import Pins
from taskq.client.future import TaskFuture
from taskq.errors import TaskCancelled
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
    _sent: threading.Condition  # notified as batches of submissions reach the master
    _pins: Pins
    outbox: str

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

    # ------------------------------------------------------------------ internals

    def _cancel(self, task_id: str) -> bool:
        """Make sure a task never runs; False if it runs already (or ended)."""
        return task_id in self._cancel_ids([task_id])

    def _cancel_ids(self, task_ids: list[str]) -> set[str]:
        """Make sure these tasks never run; returns those that will not (a task still
        here is dropped at once, one sent is cancelled on the master, in one call)."""
        with self._lock:
            entries = [e for e in map(self._entries.get, task_ids) if e is not None]
            # a task on its way to the master is cancelled there once it has arrived: asked
            # sooner, the master would not know it yet and it would run
            self._sent.wait_for(lambda: not any(e.sending for e in entries),
                                defaults.CALL_TIMEOUT_S)
            unsent = {e.msg.task_id for e in entries if not e.sent}
            for entry in entries:
                if not entry.sent:
                    entry.dropped = True
                    del self._entries[entry.msg.task_id]
                    self._pins.drop(entry.msg.task_id,
                                    TaskCancelled(f"task {entry.msg.task_id} was cancelled"))
        for entry in entries:
            if not entry.sent and entry.found is not None:
                entry.found.release()
        sent = [e.msg.task_id for e in entries if e.sent]
        return unsent | (self._cancel_sent(sent) if sent else set())

    def _cancel_sent(self, task_ids: list[str]) -> set[str]:
        """Cancel tasks on the master; returns those that will never run. A task a worker
        took is dropped by that worker if it has not begun (the master asks it); a worker
        that does not answer loses the task when its lease expires, and then it is dropped."""
        deadline = time.monotonic() + defaults.LOST_AFTER_S * 2
        cancelled: set[str] = set()
        while task_ids:
            out = self._remote.cancel(task_ids, wait=defaults.LONG_POLL_S,
                                       outbox=self.outbox)
            cancelled.update(out.cancelled)
            task_ids = out.asked if time.monotonic() < deadline else []
        with self._lock:
            for task_id in cancelled:
                self._entries.pop(task_id, None)
        return cancelled

    def _cancel_all(self) -> None:
        """Cancel every task of this client that has not started (``shutdown``)."""
        with self._lock:
            futures = [e.future for e in self._entries.values()]
        self._cancel_futures(futures)

    def _cancel_futures(self, futures: list[TaskFuture[Any]]) -> None:
        """Cancel the tasks of these futures that have not begun, in one call."""
        never = self._cancel_ids([f.task_id for f in futures])
        for future in futures:
            if future.task_id in never:
                future._mark_cancelled()
