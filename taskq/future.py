"""``TaskFuture``: a ``concurrent.futures.Future`` for one task of a ``taskq.Client``.

    submit ──► TaskFuture (pending) ── the worker began it ──► running ──► done
                   │ cancel(): the client makes sure it never runs (asking the master, and
                   ▼ through it the worker that took it) ──► cancelled, waiters woken

The client settles it (``_begin``, ``set_result``, ``set_exception``, ``_mark_cancelled``);
``cancel`` asks the client, which owns the link to the master.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import _base as futures_base  # the Future's states, for cancel
from typing import Any

from taskq import dependencies


class TaskFuture(Future[Any]):
    """A Future for one task. ``running()`` is True once a worker started it; ``cancel()``
    succeeds for every task that has not started (queued on the master, or taken by a
    worker but not begun) and guarantees it never runs; it returns False once it runs."""

    def __init__(self, client: Any, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self._client = client

    def __reduce__(self) -> tuple[Any, ...]:
        """Among the arguments of ``submit`` or ``map``, a dependency (its result, on the
        worker); pickled anywhere else, a TypeError."""
        return dependencies.reduce_future(self)

    def cancel(self) -> bool:
        with self._condition:
            if self.done():
                return self.cancelled()
        if self._client._cancel(self.task_id):
            return self._mark_cancelled()
        self._begin()  # it runs, or it ended and its result is on the way
        return self.cancelled()

    def _mark_cancelled(self) -> bool:
        """The task will never run: cancel this future, also if it showed running (its
        worker stopped and handed it back), and wake every ``wait``/``as_completed``."""
        with self._condition:  # reentrant: cancel and its notifications run under it
            if self._state == futures_base.FINISHED or self.cancelled():
                return self.cancelled()
            if self._state == futures_base.RUNNING:
                self._state = futures_base.PENDING  # handed back: it waits again
            Future.cancel(self)
            self.set_running_or_notify_cancel()
            return True

    def _begin(self) -> bool:
        """Pending -> running, so a result can be set; False if it was cancelled."""
        with self._condition:
            if self.running():
                return True
            if self.done():
                return False
            return self.set_running_or_notify_cancel()
