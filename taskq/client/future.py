"""``TaskFuture``: a ``concurrent.futures.Future`` for one task of a ``taskq.Client``.

    submit ──► TaskFuture (pending) ── the worker began it ──► running ──► done
                   │ cancel(): the client makes sure it never runs (asking the master, and
                   ▼ through it the worker that took it) ──► cancelled, waiters woken

The client settles it (``_begin``, ``set_result``, ``set_exception``, ``_mark_cancelled``)
and keeps ``progress`` (``taskq.report_progress`` in the task) up to date; ``cancel`` asks
the client, which owns the link to the master (``Client.cancel(f, running=True)`` stops a
running task too). A cancelled future raises ``taskq.TaskCancelled``, a
``concurrent.futures.CancelledError``.
"""

from __future__ import annotations

from concurrent.futures import CancelledError, Future
from concurrent.futures import _base as futures_base  # the Future's states, for cancel
from typing import Any, ParamSpec, TypeVar

from taskq.errors import TaskCancelled
from taskq.protocol import deps, nesting
from taskq.protocol.progress import Progress

R = TypeVar("R")  # what a task returns: ``submit(f)`` of ``def f() -> R`` is a TaskFuture[R]
P = ParamSpec("P")  # the parameters of a submitted function, checked against its arguments


class TaskFuture(Future[R]):
    """A Future for one task. ``running()`` is True once a worker started it; ``cancel()``
    succeeds for every task that has not started (queued on the master, or taken by a
    worker but not begun) and guarantees it never runs; it returns False once it runs."""

    def __init__(self, client: Any, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id  # public: names the task to the CLI and the master
        self._client = client
        self._progress: Progress | None = None
        self._cancel_detail = "cancelled before it started"

    @property
    def progress(self) -> Progress | None:
        """The task's last ``(done, total, message)`` from ``taskq.report_progress``, as
        the master last told it (it arrives within about two seconds); None before any."""
        return self._progress

    def result(self, timeout: float | None = None) -> R:
        """As ``Future.result``; a cancelled task raises ``taskq.TaskCancelled``."""
        try:
            if self.done():
                return super().result(timeout)
            with nesting.waiting():  # inside a task: its slot is given up meanwhile
                return super().result(timeout)
        except CancelledError as exc:
            raise self._cancelled_error(exc) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As ``Future.exception``; a cancelled task raises ``taskq.TaskCancelled``."""
        try:
            if self.done():
                return super().exception(timeout)
            with nesting.waiting():
                return super().exception(timeout)
        except CancelledError as exc:
            raise self._cancelled_error(exc) from None

    def _cancelled_error(self, exc: CancelledError) -> CancelledError:
        if isinstance(exc, TaskCancelled) or not self.cancelled():
            return exc
        return TaskCancelled(f"task {self.task_id} was {self._cancel_detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Among the arguments of ``submit`` or ``map``, a dependency (its result, on the
        worker); pickled anywhere else, a TypeError."""
        return deps.reduce_future(self)

    def cancel(self) -> bool:
        with self._condition:
            if self.done():
                return self.cancelled()
        if self._client._cancel(self.task_id):
            return self._mark_cancelled()
        self._begin()  # it runs, or it ended and its result is on the way
        return self.cancelled()

    def _mark_cancelled(self, detail: str = "") -> bool:
        """The task will never run (or was stopped): cancel this future, also if it showed
        running, and wake every ``wait``/``as_completed``."""
        with self._condition:  # reentrant: cancel and its notifications run under it
            if detail:
                self._cancel_detail = detail
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
