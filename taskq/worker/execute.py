"""What a pool process does with one task: load it, run it, encode how it ended.

Runs inside the worker's pool processes (``pools.process`` calls ``run``), and on the threads
of its thread and asyncio pools (with ``load``, ``call``, ``failed``, ``encode``).
``run`` never raises:
an exception and a result that cannot be pickled become an ERROR outcome whose body is
the pickled exception; a task that cannot be loaded here (its module does not import)
is UNLOADABLE, its detail one line of why (then the traceback), so that the master hands
it to another worker; one past its expiry deadline is EXPIRED and not started. A
``soft_timeout`` raises ``taskq.SoftTimeout`` in the running task (``taskq.worker.soft``).
A BaseException (SystemExit,
KeyboardInterrupt) is an outcome like any other, whether the task raised it or the
pickling of its result or exception did: the submitter gets it, as from the standard
process pool, and the pool process goes on::

    Payload(fn bytes, args view, retry_on, context) ──► load (cached by fn bytes) ──► Loaded
        Loaded ──► bind(context) ──► fn(*args, **kwargs) ──► RunResult(status, body, detail, retry)
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import CoroutineType
from typing import Any

from taskq.defaults import EXPIRES_SKEW_S, TRACEBACK_MAX_CHARS
from taskq.errors import RemoteError, TaskLoadError
from taskq.protocol import bodies, nesting
from taskq.protocol.messages import Status
from taskq.protocol.options import TaskFunction, retry_applies
from taskq.worker import soft
from taskq.worker.context import TaskContext, bind, unbind

CUDA_ENV = "CUDA_VISIBLE_DEVICES"
_FN_CACHE: OrderedDict[bytes, Any] = OrderedDict()
_FN_CACHE_SIZE = 128  # distinct functions kept loaded per process; a miss costs one unpickle


def import_from(paths: tuple[str, ...]) -> None:
    """Put these directories first on ``sys.path``, in order (those already on it move no
    further), so tasks naming a module by import path find the user's code there."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


RESOLVE = "__taskq_resolve__"  # a function named by import path (``taskq submit mod:fn``)
# has this method: it imports its target when the task is loaded, not when it is called


def _load_function(fn: bytes) -> Any:
    cached = _FN_CACHE.get(fn)
    if cached is None:
        cached = bodies.decode_function(fn)
        resolve = getattr(type(cached), RESOLVE, None)
        if resolve is not None:
            cached = resolve(cached)
        _FN_CACHE[fn] = cached
        if len(_FN_CACHE) > _FN_CACHE_SIZE:
            _FN_CACHE.popitem(last=False)
    return cached


def _load_error(exc: BaseException) -> tuple[TaskLoadError, str]:
    """The error, and why in one line (``could not import m: No module named 'm'``)."""
    if isinstance(exc, ImportError) and exc.name:
        why = f"could not import {exc.name}: {exc}"
    else:
        why = f"could not load the task: {type(exc).__name__}: {exc}"
    return TaskLoadError(f"the worker on {socket.gethostname()} {why}"), why


@dataclass(frozen=True, slots=True)
class Payload:
    """One task as the worker hands it to its pool: what runs, and what it is told."""

    fn: bytes  # the encoded function
    args: Any  # the arguments' body (a PickleBuffer: out of band), or (body, inputs) for a
    # task with dependencies: ``inputs`` are their results (``taskq.protocol.deps``)
    retry_on: tuple[str, ...] = ()  # the failures that may be retried (none named: any)
    context: TaskContext | None = None  # ``taskq.current_task()`` while it runs
    gpu_env: bool = False  # set CUDA_VISIBLE_DEVICES to its gpu units (a process of its own)
    expires_at: float = 0.0  # not started after this wall-clock time (0: no deadline)
    soft_timeout: float | None = None  # taskq.SoftTimeout raised in it after this long
    trace: str = ""  # the traceparent of the worker's span of it: current while it runs


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a task ended in the pool: the ``Status`` its result will carry, the body (the
    pickled value or exception), the traceback text, and whether a retry may follow."""

    status: Status
    body: bytes
    detail: str = ""
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Loaded:
    """A decoded task, ready to be called."""

    fn: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    payload: Payload


def load(payload: Payload) -> Loaded | RunResult:
    """Decode one task; an UNLOADABLE result if it cannot be here."""
    args_bytes, inputs = payload.args, None
    if type(args_bytes) is tuple:
        args_bytes, inputs = args_bytes
    try:
        fn = _load_function(payload.fn)
        args, kwargs = bodies.decode_args(args_bytes, inputs)
    except BaseException as exc:  # a module may even exit as it is imported
        err, why = _load_error(exc)
        return RunResult(Status.UNLOADABLE, _error_body(err), f"{why}\n{_trace(exc)}")
    return Loaded(fn, args, kwargs, payload)


def expired(payload: Payload) -> RunResult | None:
    """An EXPIRED result if the task's deadline passed (by this host's clock, give or take
    EXPIRES_SKEW_S): it is not started, whatever pool it waited in."""
    if payload.expires_at and time.time() > payload.expires_at + EXPIRES_SKEW_S:
        late = time.time() - payload.expires_at
        return RunResult(Status.EXPIRED, b"", f"its expiry deadline passed {late:.3f} s "
                                              f"before a worker could start it; it never ran")
    return None


def run(payload: Payload) -> RunResult:
    """Run one task; never raises. ``retry`` says whether what the task raised is one of
    the failures ``retry_on`` names (any exception when it names none). An ``async def``
    task runs to its end on an event loop of its own. A task past its expiry deadline is
    not run (EXPIRED)."""
    loaded = expired(payload) or load(payload)
    if not isinstance(loaded, Loaded):
        return loaded
    if payload.context is None:
        return call(loaded.fn, loaded.args, loaded.kwargs, payload.retry_on,
                    payload.soft_timeout)
    with task_context(payload):
        return call(loaded.fn, loaded.args, loaded.kwargs, payload.retry_on,
                    payload.soft_timeout)


@contextlib.contextmanager
def task_context(payload: Payload) -> Iterator[None]:
    """Tell the task who it is, which units it holds, its attempt, queue and worker
    (``taskq.current_task()``); in a process of its own, ``CUDA_VISIBLE_DEVICES`` names
    its GPUs while it runs."""
    context = payload.context
    if context is None:
        yield
        return
    if payload.trace:  # the worker traces it: its span is current here while it runs
        with _current_span(payload.trace), task_context(replace(payload, trace="")):
            yield
        return
    token, nest = bind(context), nesting.enter(context.task_id)
    gpus = context.resources.get("gpu") if payload.gpu_env else None
    if not isinstance(gpus, list):
        try:
            yield
        finally:
            nesting.leave(nest)
            unbind(token)
        return
    before = os.environ.get(CUDA_ENV)
    os.environ[CUDA_ENV] = ",".join(map(str, gpus))
    try:
        yield
    finally:
        nesting.leave(nest)
        unbind(token)
        if before is None:
            os.environ.pop(CUDA_ENV, None)
        else:
            os.environ[CUDA_ENV] = before


@contextlib.contextmanager
def _current_span(traceparent: str) -> Iterator[None]:
    from opentelemetry import context

    from taskq.tracing import context_of

    token = context.attach(context_of(traceparent))
    try:
        yield
    finally:
        context.detach(token)


def call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
         retry_on: tuple[str, ...], soft_timeout: float | None = None) -> RunResult:
    """Call a loaded task and encode how it ended (a coroutine is run on a new loop);
    ``taskq.SoftTimeout`` is raised in it after ``soft_timeout`` seconds (``soft``)."""
    try:
        if soft_timeout is None or is_async(fn):
            value = fn(*args, **kwargs)
        else:
            with soft.limit(soft_timeout):
                value = fn(*args, **kwargs)
        if type(value) is CoroutineType:
            if soft_timeout is not None:
                from taskq.worker import soft_async  # asyncio: only for a coroutine

                value = soft_async.within(value, soft_timeout)
            value = _run_coroutine(value)
    except BaseException as exc:  # a task's SystemExit or KeyboardInterrupt is its outcome
        return failed(exc, retry_on)
    return encode(value)


def failed(exc: BaseException, retry_on: tuple[str, ...]) -> RunResult:
    """How a task that raised ``exc`` ended."""
    retry = not retry_on or retry_applies(retry_on, type(exc))
    return RunResult(Status.ERROR, _error_body(exc), _trace(exc), retry)


def encode(value: Any) -> RunResult:
    """How a task that returned ``value`` ended."""
    try:
        return RunResult(Status.OK, bodies.encode_value(value))
    except BaseException as exc:  # SerializationError, or what pickling raised past it
        return RunResult(Status.ERROR, _error_body(exc), _trace(exc))


def _trace(exc: BaseException) -> str:
    """The traceback as text, for the master's task history (which never unpickles the
    exception); its last TRACEBACK_MAX_CHARS characters, ending with the exception line."""
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:  # a __str__ that raises
        text = f"{type(exc).__qualname__}: <unprintable>"
    return text[-TRACEBACK_MAX_CHARS:]


def is_async(fn: Any) -> bool:
    """Is ``fn`` an ``async def`` (also when wrapped by ``taskq.task``)?"""
    if isinstance(fn, TaskFunction):
        fn = fn.fn
    return inspect.iscoroutinefunction(fn)


def _run_coroutine(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _error_body(exc: BaseException) -> bytes:
    """``bodies.encode_error``, which lets a BaseException raised while pickling ``exc``
    through: that exception is then the outcome (as the standard process pool has it)."""
    try:
        return bodies.encode_error(exc)
    except BaseException as raised:
        try:
            return bodies.encode_error(raised)
        except BaseException:  # that one does not pickle either: send its text
            return bodies.encode_error(RemoteError(type(raised).__qualname__, repr(raised),
                                                 "".join(traceback.format_exception(raised))))
