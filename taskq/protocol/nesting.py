"""Tasks that submit tasks: which task is running here, and how a task that waits on its
children gives up its slot meanwhile (as Dask's ``secede``/``rejoin``).

The worker's pool binds a ``Nest`` around each task it runs (a context variable: right
per thread and per coroutine); the client, inside that task, reads it::

    pool ── bind(Nest(task id, secede, rejoin)) ──► task code ── current_client().submit
                                                       │  options.parent = the task's id
        future.result() / wait / map ── waiting() ─────┘
             secede(): the worker may run one more task on this slot meanwhile
             rejoin(): the task takes its slot back (it waits for one to be free)

Outside a task (or in a pool that cannot secede) ``waiting()`` does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Nest:
    """The running task's id, and how it gives up and takes back its slot."""

    task_id: str = ""
    secede: Callable[[], None] = _nothing
    rejoin: Callable[[], None] = _nothing


_NONE = Nest()
_current: contextvars.ContextVar[Nest] = contextvars.ContextVar("taskq_nest", default=_NONE)
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("taskq_nest_depth", default=0)


_hooks: tuple[Callable[[], None], Callable[[], None]] = (_nothing, _nothing)


def set_slot_hooks(secede: Callable[[], None], rejoin: Callable[[], None]) -> None:
    """How the tasks of this process give up their slot and take it back (set by the pool
    that runs them: a pool process, or the thread pool in the worker's process)."""
    global _hooks
    _hooks = (secede, rejoin)


def enter(task_id: str) -> contextvars.Token[Nest]:
    """A task begins here (the pool's side): ``leave(token)`` when it ended."""
    return _current.set(Nest(task_id, *_hooks))


def leave(token: contextvars.Token[Nest]) -> None:
    _current.reset(token)


def bind(nest: Nest) -> contextvars.Token[Nest]:
    return _current.set(nest)


def unbind(token: contextvars.Token[Nest]) -> None:
    _current.reset(token)


def current_task_id() -> str:
    """The id of the task running in this thread or coroutine ("" outside a task)."""
    return _current.get().task_id


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a wait on other tasks: inside a task, its slot is given up meanwhile (once,
    however deeply such waits nest)."""
    nest = _current.get()
    depth = _depth.get()
    if not nest.task_id or depth:
        yield
        return
    token = _depth.set(depth + 1)
    nest.secede()
    try:
        yield
    finally:
        try:
            nest.rejoin()
        finally:
            _depth.reset(token)
