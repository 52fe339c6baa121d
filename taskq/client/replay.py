"""``Client.replay``: run a task that failed for good again, as a new task of this client.

The master keeps a failed task's call (``taskq failed`` lists them); a replay is a new task
with a new id under this client's outbox, the same function, arguments and options, linked
to the original (``taskq inspect`` shows both ways). Its future is registered before the
call, as a task on its way to the master is, so a result that comes back at once is not
missed; the master answers with the new task, which the client then keeps (and sends again
after a reconnect) as it keeps every task it submitted::

    replay(id) ── new id ── _track(new id): a future, "being sent" ──► Remote.replay([id],
        [new id], outbox, echo=True) ──► Replayed(new task | error) ── _tracked(new id, task)
            error ──► ReplayError (the future is dropped)      task ──► the future
"""

from __future__ import annotations

from typing import Any

from taskq.client.future import TaskFuture
from taskq.errors import ReplayError
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import TaskMsg


class Replays:
    """``replay`` for ``Client``; see the module docstring."""

    outbox: str
    _remote: BrokerAPI

    def _tracked(self, task_id: str, msg: TaskMsg | None) -> None: ...  # pragma: no cover
    def _new_task_id(self) -> str:
        raise NotImplementedError  # pragma: no cover

    def _track(self, task_id: str) -> TaskFuture[Any]:
        raise NotImplementedError  # pragma: no cover

    def replay(self, task_id: str) -> TaskFuture[Any]:
        """Run the task ``task_id``, which failed for good (after its retries), again as a
        new task with the same function, arguments and options; returns the new task's
        future. Any submitter's failed task may be replayed by id (``taskq failed`` lists
        them). ``ReplayError`` if it cannot be: no failed task of that id, a task that has
        not failed, or one whose call the master dropped after its history retention."""
        new_id = self._new_task_id()
        future = self._track(new_id)
        try:
            [out] = self._remote.replay([task_id], [new_id], outbox=self.outbox, echo=True)
        except BaseException:
            self._tracked(new_id, None)
            raise
        self._tracked(new_id, out.task)
        if out.error:
            raise ReplayError(out.error)
        return future
