"""Reading a task's result by its id: the core of ``taskq result`` (``Client.future`` is the
Python API's way, in ``taskq.client.deps``).

The master holds a result while its task runs, until its submitter acknowledged it, and for
the task's ``result_ttl`` after it ended (``taskq.master.state.retention``). A reader asks
what the master holds, then reads it through a future of its own::

    open_future(client, id, wait) ── result_states ── running, not wait ──► NotEnded
                                        │ expired ──► ResultExpired  unknown ──► DependencyError
                                        ▼ kept, or running and wait
                                   Client.future(id) ──► outcome(future, timeout) ──► the
                                                         value, or the task's exception
"""

from __future__ import annotations

import json
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

from taskq.client.client import Client
from taskq.client.future import TaskFuture
from taskq.errors import DependencyError, TaskqError
from taskq.protocol.replies import ResultState


class NotEnded(TaskqError):
    """The task has not ended yet (and the reader would not wait)."""


class NotJSON(TaskqError):
    """The result cannot be written as JSON."""


def open_future(client: Client, task_id: str, *, wait: bool) -> TaskFuture[Any]:
    """A future of task ``task_id``'s outcome. ``NotEnded`` if it has not ended and not
    ``wait``; ``ResultExpired`` if its TTL passed; ``DependencyError`` if the master knows
    no such task."""
    if not wait and client._result_state(task_id, grace=False) is ResultState.RUNNING:
        raise NotEnded(f"task {task_id} has not ended yet: pass --wait to wait for it")
    future = client.future(task_id)
    if future is None:  # (a fresh client submitted nothing: never)
        raise DependencyError(f"no result of task {task_id} is held")
    return future


def outcome(future: TaskFuture[Any], timeout: float | None) -> Any:
    """The future's value, or raise the task's exception; ``TimeoutError`` (the future
    cancelled) if it did not end within ``timeout`` seconds."""
    try:
        return future.result(timeout)
    except FuturesTimeout:
        future.cancel()
        raise TimeoutError(f"the task did not end within {timeout:g} s") from None


def as_json(task_id: str, value: Any) -> str:
    """The value as one line of JSON; ``NotJSON`` naming its type if it has none."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise NotJSON(f"the result of task {task_id} (a {type(value).__name__}) is not "
                      f"JSON-serialisable: drop --json to print its repr") from None


def failure_line(exc: BaseException) -> str:
    """How a failed task's exception is told: its type and message, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
