"""What a pool process does with one task: load it, run it, encode how it ended.

Runs inside the worker's pool processes (``taskq.pool`` calls ``run``). It never raises:
a function that cannot be loaded, an exception, and a result that cannot be pickled all
become an ERROR outcome whose body is the pickled exception::

    (fn bytes, args bytes or view) ──► load (cached by fn bytes) ──► fn(*args, **kwargs)
                                                             │
                          (Status, body bytes, detail) ◄─────┘
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import Any

from taskq import wire
from taskq.errors import SerializationError, TaskLoadError
from taskq.wire import Status

_FN_CACHE: OrderedDict[bytes, Any] = OrderedDict()
_FN_CACHE_SIZE = 128  # distinct functions kept loaded per process; a miss costs one unpickle


def _load_function(fn: bytes) -> Any:
    cached = _FN_CACHE.get(fn)
    if cached is None:
        cached = _FN_CACHE[fn] = wire.decode_function(fn)
        if len(_FN_CACHE) > _FN_CACHE_SIZE:
            _FN_CACHE.popitem(last=False)
    return cached


def _load_error(exc: BaseException) -> TaskLoadError:
    what = f"module {exc.name!r} is not importable there" if isinstance(
        exc, ModuleNotFoundError) else f"{type(exc).__name__}: {exc}"
    return TaskLoadError(f"the worker on {socket.gethostname()} could not load the task: {what}")


def run(payload: tuple[bytes, bytes | memoryview]) -> tuple[Status, bytes, str]:
    """Run one encoded task; returns (status, body, detail) and never raises."""
    fn_bytes, args_bytes = payload
    try:
        fn = _load_function(fn_bytes)
        args, kwargs = wire.decode_args(args_bytes)
    except Exception as exc:
        return Status.ERROR, wire.encode_error(_load_error(exc)), ""
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # a task's SystemExit or KeyboardInterrupt is its outcome
        return Status.ERROR, wire.encode_error(exc), ""
    try:
        return Status.OK, wire.encode_value(value), ""
    except SerializationError as exc:
        return Status.ERROR, wire.encode_error(exc), ""
