"""taskq: a distributed task queue for Python with no broker to install.

    import taskq
    with taskq.Client("10.0.0.5:5000") as client:      # or Client() for a local cluster
        future = client.submit(pow, 2, 10)
        print(future.result())

Module-level ``submit`` and ``map`` use a default client configured from
``TASKQ_ADDRESS`` and ``TASKQ_AUTHKEY`` (a local cluster when no address is set).
"""

from __future__ import annotations

import atexit
import importlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from taskq.errors import (
    AuthError,
    ConnectError,
    DependencyError,
    DependencyFailed,
    PayloadTooLarge,
    RemoteError,
    ReplayError,
    ResultExpired,
    SerializationError,
    SoftTimeout,
    TaskCancelled,
    TaskCrashed,
    TaskExpired,
    TaskLoadError,
    TaskqError,
    TaskRefused,
    TaskTimeout,
    VersionMismatch,
    WorkerLost,
)

# The public names of the roles, loaded on first use (PEP 562): ``import taskq`` loads only the
# leaves, so a task's pool process that imports ``taskq`` for ``report_progress`` or
# ``current_task`` loads no client, master or network code.
_LAZY = {
    "AsyncClient": "taskq.client.asyncio",
    "allow_failure": "taskq.client.deps",
    "CancelResult": "taskq.client.cancel",
    "Client": "taskq.client.client",
    "TaskFuture": "taskq.client.future",
    "current_client": "taskq.client.current",
    "track": "taskq.client.track",
    "TLS": "taskq.net.tls",
    "TLSError": "taskq.net.tls",
    "TaskFunction": "taskq.protocol.options",
    "task": "taskq.protocol.options",
    "Progress": "taskq.protocol.progress",
    "TaskContext": "taskq.worker.context",
    "current_task": "taskq.worker.context",
    "report_progress": "taskq.worker.report",
}

if TYPE_CHECKING:
    from taskq.client.asyncio import AsyncClient
    from taskq.client.cancel import CancelResult
    from taskq.client.client import Client
    from taskq.client.current import current_client
    from taskq.client.deps import allow_failure
    from taskq.client.future import TaskFuture
    from taskq.client.track import track
    from taskq.net.tls import TLS, TLSError
    from taskq.protocol.options import TaskFunction, task
    from taskq.protocol.progress import Progress
    from taskq.worker.context import TaskContext, current_task
    from taskq.worker.report import report_progress

__all__ = [
    "TLS",
    "AsyncClient",
    "AuthError",
    "CancelResult",
    "Client",
    "ConnectError",
    "DependencyError",
    "DependencyFailed",
    "PayloadTooLarge",
    "Progress",
    "RemoteError",
    "ReplayError",
    "ResultExpired",
    "SerializationError",
    "SoftTimeout",
    "TLSError",
    "TaskCancelled",
    "TaskContext",
    "TaskCrashed",
    "TaskExpired",
    "TaskFunction",
    "TaskFuture",
    "TaskLoadError",
    "TaskRefused",
    "TaskTimeout",
    "TaskqError",
    "VersionMismatch",
    "WorkerLost",
    "allow_failure",
    "current_client",
    "current_task",
    "default_client",
    "map",
    "report_progress",
    "submit",
    "task",
    "track",
]
__version__ = "0.1.0"

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client behind ``taskq.submit`` and ``taskq.map``."""
    from taskq.client.client import Client

    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
            atexit.register(_default.shutdown, wait=False)
        return _default


_P = ParamSpec("_P")
_R = TypeVar("_R")


@overload  # an async def's future holds what it returns once awaited (on the worker)
def submit(fn: Callable[_P, Coroutine[Any, Any, _R]], /, *args: _P.args,
           **kwargs: _P.kwargs) -> TaskFuture[_R]: ...
@overload
def submit(fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> TaskFuture[_R]: ...


def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture[Any]:
    """``default_client().submit(fn, *args, **kwargs)``."""
    return default_client().submit(fn, *args, **kwargs)


def map(fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
        chunksize: int = 1) -> Iterator[Any]:
    """``default_client().map(...)``: results in order."""
    return default_client().map(fn, *iterables, timeout=timeout, chunksize=chunksize)
