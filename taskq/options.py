"""Per-task options carried by the callable itself, so they never collide with its kwargs.

    @taskq.task(timeout=5, retries=2)        client.submit(fetch, url)
    def fetch(url): ...                ──►   TaskMsg.options = TaskOptions(timeout=5, retries=2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, overload

from taskq.wire import TaskOptions


class TaskFunction:
    """A callable with taskq options; calling it calls the function."""

    def __init__(self, fn: Callable[..., Any], options: TaskOptions) -> None:
        if not callable(fn):
            raise TypeError(f"taskq.task needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.taskq_options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<taskq.task {getattr(self.fn, '__qualname__', self.fn)!r} {self.taskq_options}>"


def make_options(timeout: float | None = None, retries: int = 0, priority: int = 0,
                 queue: str = "default") -> TaskOptions:
    """Validated options; ValueError says which one is wrong."""
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries!r}")
    if not queue:
        raise ValueError("queue must be a non-empty name")
    return TaskOptions(None if timeout is None else float(timeout), int(retries), int(priority),
                       queue)


@overload
def task(fn: Callable[..., Any], *, timeout: float | None = ..., retries: int = ...,
         priority: int = ..., queue: str = ...) -> TaskFunction: ...
@overload
def task(fn: None = None, *, timeout: float | None = ..., retries: int = ...,
         priority: int = ..., queue: str = ...) -> Callable[[Callable[..., Any]], TaskFunction]:
    ...


def task(fn: Callable[..., Any] | None = None, *, timeout: float | None = None,
         retries: int = 0, priority: int = 0,
         queue: str = "default") -> TaskFunction | Callable[[Callable[..., Any]], TaskFunction]:
    """Attach options to a callable: ``task(fn, timeout=2)`` or ``@task(timeout=2)``."""
    options = make_options(timeout, retries, priority, queue)
    if fn is None:
        return lambda f: TaskFunction(f, options)
    return TaskFunction(fn, options)
