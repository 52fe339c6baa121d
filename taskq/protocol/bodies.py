"""How bodies are encoded: a task's function and arguments, a result's value or exception,
a shared value. The only module that imports cloudpickle; every pickling failure is raised
as one ``SerializationError`` saying what failed. The master never calls a decoder here:
bodies are opaque bytes to it (``taskq.protocol.messages`` carries them)::

    client                    master                   worker            pool process
    encode_function ─┐
    encode_args ─────┴ TaskMsg ──► journal/queue ──► TaskMsg ──► Payload ──► decode_function
                                                                              decode_args, run
    decode_result ◄── ResultMsg ◄── outbox ◄──────── ResultMsg ◄── encode_value / encode_error
"""

from __future__ import annotations

import pickle
import sys
import traceback
from collections.abc import Callable
from types import BuiltinFunctionType, FunctionType
from typing import Any

import cloudpickle

from taskq.errors import (
    DependencyError,
    DependencyFailed,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    TaskCancelled,
    TaskCrashed,
    TaskExpired,
    TaskLoadError,
    TaskRefused,
    TaskTimeout,
    WorkerLost,
    dependency_failed,
)
from taskq.protocol import deps, frames
from taskq.protocol.messages import PICKLE_PROTOCOL, Body, ResultMsg, Status


def _dumps(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return data


class _ByValueNeeded(Exception):
    """Raised by _DataPickler at an object only cloudpickle can ship."""


class _DataPickler(pickle.Pickler):
    """The C pickler, stopped at anything defined in ``__main__``.

    Plain data never reaches ``reducer_override`` (the C pickler handles it first); the
    functions, classes and instances of classes that do are checked, and one from
    ``__main__``, which the C pickler would store by a name no worker can import, stops it.
    """

    def reducer_override(self, obj: Any) -> Any:
        where = obj if isinstance(obj, type | FunctionType) else type(obj)
        if where.__module__ == "__main__":
            raise _ByValueNeeded
        return NotImplemented


def _dumps_data(obj: Any) -> bytes:
    """Pickle data: the C pickler when it can do the whole job, else cloudpickle.

    The C pickler is several times faster but stores functions and classes by reference;
    that fails for lambdas and local objects (it raises) and would be wrong for anything
    from ``__main__``, so those go to cloudpickle.
    """
    try:
        return frames.dumps(obj, _DataPickler, protocol=PICKLE_PROTOCOL)
    except DependencyError:
        raise
    except Exception:
        return _dumps(obj)


# Marks a function pickled by value (its code inside): the Python major and minor version
# that pickled it follow, since code objects load only where that version runs.
_BY_VALUE = b"TQBV"


def encode_function(fn: Any) -> bytes:
    """Pickle a callable (lambdas, closures and ``__main__`` functions by value, marked with
    this Python's version: see ``decode_function``)."""
    if not callable(fn):
        raise TypeError(f"taskq can only run callables, not {type(fn).__name__}")
    try:
        data = _dumps(fn)
    except Exception as exc:
        raise SerializationError(
            f"function {_describe(fn)} could not be pickled: {exc}") from exc
    if b"cloudpickle" in data:  # rebuilt by cloudpickle's own functions: code by value
        return _BY_VALUE + bytes(sys.version_info[:2]) + data
    return data


def reference_key(fn: Any) -> tuple[str, str] | None:
    """(module, name) of a function that travels by reference, else None.

    Such a function pickles to the same bytes for as long as its module keeps it (nothing in
    the pickle can change), so its encoding may be reused; any other callable (a closure, a
    partial, a bound method, a callable object, anything from ``__main__``) carries state that
    may change between submits and is encoded each time.
    """
    if not isinstance(fn, FunctionType | BuiltinFunctionType):
        return None
    module, name = getattr(fn, "__module__", None), fn.__qualname__
    if not module or module == "__main__" or "<" in name:
        return None
    if module in cloudpickle.list_registry_pickle_by_value():
        return None
    target: Any = sys.modules.get(module)
    for part in name.split("."):
        target = getattr(target, part, None)
    if target is not fn or getattr(fn, "__closure__", None):
        return None
    return module, name


def encode_args(args: tuple[Any, ...], kwargs: dict[str, Any],
                on_future: Callable[[Any], tuple[Any, ...]] | None = None) -> bytes:
    """Pickle a call's arguments; on failure, name the argument that could not be pickled.
    A ``TaskFuture`` among them (at any depth) is reduced by ``on_future``
    (``taskq.protocol.deps``); without it, it cannot be pickled. A ``DependencyError`` the
    hook raises comes through as itself."""
    token = deps.encoding(on_future)
    try:
        return _dumps_data((args, kwargs))
    except DependencyError:
        raise
    except Exception as exc:
        raise SerializationError(f"{_find_unpicklable(args, kwargs)} could not be "
                                 f"pickled: {exc}") from exc
    finally:
        deps.encoded(token)


def _find_unpicklable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    named: list[tuple[str, Any]] = [(f"argument {i}", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for name, value in named:
        try:
            _dumps(value)
        except Exception:
            return f"{name} ({type(value).__name__})"
    return "the arguments"


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def decode_call(fn: bytes, args: bytes) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Inverse of encode_function/encode_args; lets the loader's own exception through."""
    return decode_function(fn), *decode_args(args)


def decode_function(fn: bytes) -> Any:
    """Load a function; one pickled by value on another Python minor version is refused
    with a SerializationError saying both versions (its code would not load, or misbehave)."""
    if fn[:len(_BY_VALUE)] != _BY_VALUE:
        return pickle.loads(fn)  # noqa: S301 -- a worker runs what its submitters sent: that is its job
    made = tuple(fn[len(_BY_VALUE):len(_BY_VALUE) + 2])
    if made != tuple(sys.version_info[:2]):
        raise SerializationError(
            f"the function was shipped by value from Python {made[0]}.{made[1]} and this "
            f"worker runs Python {sys.version_info[0]}.{sys.version_info[1]}: functions "
            f"shipped by value need the same Python minor version on submitter and worker")
    return pickle.loads(memoryview(fn)[len(_BY_VALUE) + 2:])  # noqa: S301 -- as above


def decode_args(args: Body, inputs: Any = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Unpickle a call's arguments; ``inputs``, ``((dependency id, result body), ...)``,
    take the place of the futures that were among them."""
    call: tuple[tuple[Any, ...], dict[str, Any]]
    if not inputs:
        call = pickle.loads(args)  # noqa: S301 -- as decode_call: in a worker's pool process, never the master
        return call
    with deps.decoding(inputs, allowed_failure):
        call = pickle.loads(args)  # noqa: S301 -- as above
    return call


def encode_value(value: Any) -> bytes:
    """Pickle a task's return value."""
    try:
        return _dumps_data(value)
    except Exception as exc:
        raise SerializationError(
            f"the task's result ({type(value).__name__}) could not be pickled: {exc}") from exc


def encode_shared(value: Any, what: str) -> bytes:
    """Pickle a value bound for a shared primitive (``what`` names it in the error)."""
    try:
        return _dumps_data(value)
    except Exception as exc:
        raise SerializationError(
            f"{what}: a {type(value).__name__} value could not be pickled: {exc}") from exc


def decode_shared(body: bytes) -> Any:
    return pickle.loads(body)  # noqa: S301 -- a shared value, loaded by the client that asked for it


def encode_error(exc: BaseException) -> bytes:
    """Pickle a task's exception with its traceback text; never fails.

    Exceptions that do not pickle (or unpickle) travel as their type name, message and
    traceback and come back as ``RemoteError``.
    """
    tb_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob: bytes | None = _dumps(exc)
        pickle.loads(_dumps(exc) if blob is None else blob)  # noqa: S301 -- checks that an exception pickled here loads back, in-process
    except Exception:
        blob = None
    return pickle.dumps((blob, type(exc).__qualname__, str(exc), tb_text), protocol=PICKLE_PROTOCOL)


def decode_error(body: Body) -> BaseException:
    """The exception a failed task raised, with the remote traceback as its ``__cause__``."""
    blob, type_name, message, tb_text = pickle.loads(body)  # noqa: S301 -- a result, loaded by the submitter that asked for it
    exc: BaseException
    if blob is not None:
        try:
            exc = pickle.loads(blob)  # noqa: S301 -- a result, loaded by the submitter that asked for it
        except Exception:
            exc = RemoteError(type_name, message, tb_text)
    else:
        exc = RemoteError(type_name, message, tb_text)
    exc.__cause__ = RemoteTraceback(f'\n"""\n{tb_text}"""')
    return exc


_FAILURES: dict[Status, type[Exception]] = {
    Status.CRASHED: TaskCrashed,
    Status.TIMEOUT: TaskTimeout,
    Status.LOST: WorkerLost,
    Status.REFUSED: TaskRefused,
    Status.CANCELLED: TaskCancelled,
    Status.UNLOADABLE: TaskLoadError,
    Status.EXPIRED: TaskExpired,
}


def decode_result(result: ResultMsg) -> Any:
    """The task's value, or raise what the task raised (or how it failed)."""
    if result.status is Status.OK:
        assert result.body is not None  # noqa: S101 -- narrows a type: an OK or ERROR result always has a body
        try:
            return pickle.loads(result.body)  # noqa: S301 -- a result, loaded by the submitter that asked for it
        except Exception as exc:
            raise SerializationError(f"the task's result could not be unpickled here: "
                                     f"{exc}") from exc
    if result.status is Status.ERROR and result.body is not None:
        raise decode_error(result.body)
    if result.status is Status.DEPENDENCY_FAILED and result.body is not None:
        raise dependency_cause(result)
    failure = _FAILURES.get(result.status)
    if failure is not None:
        raise failure(result.detail)
    raise RemoteError(result.status.value, result.detail, "")


def dependency_cause(result: ResultMsg) -> DependencyFailed:
    """The ``DependencyFailed`` of a DEPENDENCY_FAILED result, the dependency's own outcome
    as its ``__cause__``."""
    assert result.body is not None  # noqa: S101 -- narrows a type: such a result has a body
    dep, status, body, detail = deps.read_failure(result.body)
    try:
        decode_result(ResultMsg(dep, Status(status), body, detail))
    except BaseException as exc:
        return dependency_failed(dep, exc)
    return dependency_failed(dep, RemoteError(status, detail, ""))  # pragma: no cover


def allowed_failure(body: Any) -> BaseException:
    """The exception a failed dependency's outcome stands for (in a pool process)."""
    dep, status, raw, detail = deps.read_failure(body)
    try:
        decode_result(ResultMsg(dep, Status(status), raw, detail))
    except BaseException as exc:
        return exc
    return SerializationError(f"dependency {dep} ended {status} with no failure")
