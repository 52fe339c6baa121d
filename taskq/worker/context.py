"""``taskq.current_task()``: what the running task may know of itself, set by the worker's
pool around each task (a context variable: right per thread and per coroutine).

    worker: units assigned ──► payload ──► execute: bind(TaskContext) ──► task code
                                                                  current_task() ◄─┘
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running task: its id ("" outside a task), the resources it holds (for each
    name, the unit numbers it got (whole amounts: ``{"gpu": [1]}``) or its amount), which
    attempt this is (0 for the first run; each retry or redelivery after a lost worker
    adds one), the queue it was taken from and the public id of the worker running it
    (as ``taskq status`` shows it)."""

    task_id: str = ""
    resources: dict[str, list[int] | float] = field(default_factory=dict)
    attempt: int = 0
    queue: str = ""
    worker: str = ""


_NONE = TaskContext()
_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("taskq_task",
                                                                        default=_NONE)


def current_task() -> TaskContext:
    """The task running in this thread or coroutine (an empty context, ``task_id`` "",
    outside a task)."""
    return _current.get()


def bind(context: TaskContext) -> contextvars.Token[TaskContext]:
    return _current.set(context)


def unbind(token: contextvars.Token[TaskContext]) -> None:
    _current.reset(token)
