"""Futures among a task's arguments: what they become on the wire, and what a worker puts
in their place.

    client  encode_args(..., on_future=hook) ── a TaskFuture met while pickling ──► hook
              pending ──► (_dependency, (task id,)); the id joins TaskMsg.deps
              done OK ──► (_value, (its value,)): pickled in place, no dependency
    master  TaskMsg.deps: ids beside the opaque body ── every one ended OK ──► lease:
              TaskMsg.inputs = ((dependency id, its result body), ...)
    worker  decode_args(args, inputs) ── _dependency(task id) ──► that result, unpickled
              (once per task, however often the future appears)

A dependency wrapped in ``taskq.allow_failure`` that does not end OK is handed to its
dependent as the exception it ended with (an input under ``ALLOWED_MARK``). Any other
dependency that does not end OK fails its dependents, which never run: their result
(``Status.DEPENDENCY_FAILED``) carries the dependency's id and its own outcome, packed by
the master with ``failure_body`` (plain values: the master unpickles nothing) and read back
by the submitter with ``read_failure``.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any

from taskq.errors import SerializationError
from taskq.protocol.messages import Body, ResultMsg, Status

# What to do with a future met while pickling arguments (set by encode_args).
_HOOK: ContextVar[Callable[[Any], tuple[Any, ...]] | None] = ContextVar("taskq_dep_hook",
                                                                        default=None)
# The dependencies' result bodies while a task's arguments are unpickled (set by decode_args).
_INPUTS: ContextVar[_Inputs | None] = ContextVar("taskq_dep_inputs", default=None)


class _Inputs:
    """Dependency results for one task: bodies, unpickled on first use."""

    __slots__ = ("bodies", "failure_of", "values")

    def __init__(self, bodies: dict[str, Any],
                 failure_of: Callable[[Any], BaseException]) -> None:
        self.bodies = bodies
        self.failure_of = failure_of  # an allowed failure's body -> its exception
        self.values: dict[str, Any] = {}

    def get(self, task_id: str) -> Any:
        if task_id not in self.values:
            body = self.bodies.get(task_id)
            failure = self.bodies.get(ALLOWED_MARK + task_id) if body is None else None
            if failure is not None:
                self.values[task_id] = self.failure_of(failure)
                return self.values[task_id]
            if body is None:
                raise SerializationError(f"the result of dependency {task_id} did not reach "
                                         f"this worker")
            self.values[task_id] = pickle.loads(body)  # noqa: S301 -- a dependency's result, in a worker's pool process, never the master
        return self.values[task_id]


def encoding(hook: Callable[[Any], tuple[Any, ...]] | None) -> Token[Any]:
    """While pickling a task's arguments, futures go to ``hook`` (None: they are refused);
    ``encoded(token)`` after. (A plain token, not a context manager: it is on every submit.)"""
    return _HOOK.set(hook)


def encoded(token: Token[Any]) -> None:
    _HOOK.reset(token)


@contextlib.contextmanager
def decoding(inputs: Any, failure_of: Callable[[Any], BaseException]) -> Iterator[None]:
    """While unpickling a task's arguments, futures become these results:
    ``((dependency id, result body), ...)``; a failure the task allowed becomes
    ``failure_of(its body)``."""
    token = _INPUTS.set(_Inputs(dict(inputs), failure_of))
    try:
        yield
    finally:
        _INPUTS.reset(token)


def reduce_future(future: Any) -> tuple[Any, ...]:
    """How a ``TaskFuture`` pickles: only inside the arguments of ``submit`` or ``map``."""
    hook = _HOOK.get()
    if hook is None:
        raise TypeError(f"a taskq future ({future.task_id}) can be pickled only as an argument "
                        f"of Client.submit or Client.map, where it is a dependency")
    return hook(future)


def dependency(task_id: str) -> tuple[Any, ...]:
    """The reduction of a pending future: its task's result, on the worker."""
    return _dependency, (task_id,)


def value(obj: Any) -> tuple[Any, ...]:
    """The reduction of a future that already has its value: that value."""
    return _value, (obj,)


ALLOWED_MARK = "!"  # an input under "!" + a dependency's id is its failure (failure_body)


def input_of(result: ResultMsg) -> tuple[str, Body] | None:
    """What a kept dependency's result is in a lease's ``inputs``: (id, its value's body),
    or for a failure a dependent allowed, ("!" + id, ``failure_body``); None: no body."""
    if result.status is not Status.OK:
        return (ALLOWED_MARK + result.task_id,
                failure_body(result.task_id, result.status.value, result.body, result.detail))
    return None if result.body is None else (result.task_id, result.body)


def _dependency(task_id: str) -> Any:
    inputs = _INPUTS.get()
    if inputs is None:
        raise SerializationError(f"dependency {task_id} is read outside of a task's arguments")
    return inputs.get(task_id)


def _value(obj: Any) -> Any:
    return obj


def failure_body(dependency: str, status: str, body: Any, detail: str) -> bytes:
    """What a dependent's DEPENDENCY_FAILED result carries: the dependency's id and outcome
    (plain values only: the master builds it and unpickles nothing)."""
    raw = None if body is None else bytes(body)
    return pickle.dumps((dependency, status, raw, detail), protocol=5)


def read_failure(body: Any) -> tuple[str, str, bytes | None, str]:
    """Inverse of ``failure_body``: (dependency id, its status, its body, its detail)."""
    dep, status, raw, detail = pickle.loads(body)  # noqa: S301 -- a result, loaded by the submitter that asked for it
    return dep, status, raw, detail
