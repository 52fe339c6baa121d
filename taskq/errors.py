"""Every exception taskq raises, in one place.

A task's own exception reaches the submitter as itself; these are the failures that
belong to taskq: the wire, the link to the master, and the ways a task can end
without returning (crash, timeout, lost worker).
"""

from __future__ import annotations

import pickle
from concurrent.futures import CancelledError


class TaskqError(Exception):
    """Base class of every taskq error."""


class SerializationError(TaskqError, pickle.PicklingError):
    """A function, argument or result could not be pickled or unpickled (a
    ``pickle.PicklingError``, as the standard process pools raise)."""


class TaskLoadError(SerializationError):
    """A worker could not load a task's function (e.g. its module is not importable there)."""


class PayloadTooLarge(TaskqError, ValueError):
    """A task's encoded size is over the master's --max-payload limit."""


class AuthError(TaskqError):
    """The master rejected the authkey."""


class KeyRejected(AuthError):
    """The master at ``where`` rejected this peer's authkey; ``hint`` says where the key
    is set, in the words of whoever set it (a command's flag, a ``Client`` argument)."""

    def __init__(self, where: str, hint: str) -> None:
        super().__init__(where, hint)
        self.where, self.hint = where, hint

    def __str__(self) -> str:
        return f"authkey rejected by the master at {self.where}; {self.hint}"


class VersionMismatch(AuthError):
    """The master and this peer run versions that cannot work together (the message names
    both and what to align); it is refused, like a wrong key."""


class ConnectError(TaskqError, ConnectionError):
    """The master could not be reached (or reached again) within the allowed time."""


class TaskCrashed(TaskqError):
    """The process running the task died (exit, signal, out of memory)."""


class TaskTimeout(TaskqError):
    """The task ran past its timeout; its process was killed and replaced."""


class TaskExpired(TaskqError):
    """The task did not start by its expiry deadline (``expires``), so it never ran."""


class SoftTimeout(TaskqError):
    """Raised inside a running task at its ``soft_timeout``, before its hard ``timeout``
    ends it: the task may catch it to clean up, and return or raise as it likes."""

    def __init__(self, message: str = "the task ran past its soft_timeout") -> None:
        super().__init__(message)


class WorkerLost(TaskqError):
    """Every worker the task was handed to was lost before it finished."""


class TaskRefused(TaskqError):
    """The master refused the task (e.g. it is over the payload limit)."""


class RemoteError(TaskqError):
    """A task raised an exception that could not be pickled back; this carries its text."""

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (RemoteError, (self.type_name, self.message, self.traceback_text))


class RemoteTraceback(Exception):
    """Set as ``__cause__`` of a task's exception: the traceback as it was on the worker."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class MasterError(TaskqError):
    """A call failed inside the master (e.g. its journal could not be written)."""


class TaskCancelled(TaskqError, CancelledError):
    """The task was cancelled; it is a ``concurrent.futures.CancelledError`` too."""


class SetupError(TaskqError):
    """A worker's setup hook (``taskq worker --setup module:function``) is named wrongly or
    raised: the worker does not start."""


class DependencyError(TaskqError, ValueError):
    """A future among a task's arguments cannot be its dependency (its client was shut
    down, or the master knows no such task); raised at the call."""


class ResultExpired(DependencyError):
    """The task ended, and its result was kept for its ``result_ttl``, which has passed:
    no one can read it any more. Raised by ``Client.future(task_id)`` (or by its
    ``result()``, when the TTL passed while the future was on its way)."""


class DependencyFailed(TaskqError):
    """A dependency of the task (a future among its arguments) did not succeed, so the task
    never ran. ``dependency`` is that task's id; ``__cause__`` is its exception
    (``TaskCancelled`` for a cancelled one, ``DependencyFailed`` for one whose own
    dependency failed)."""

    def __init__(self, message: str, dependency: str = "") -> None:
        super().__init__(message)
        self.dependency = dependency

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (DependencyFailed, (str(self), self.dependency))


class ReplayError(TaskqError, ValueError):
    """A task cannot be replayed (``Client.replay``): the master knows no failed task of
    that id, the task has not failed (it is still open, or it succeeded), or its call was
    dropped when the history retention ran out. The message says which."""


def dependency_failed(dependency: str, cause: BaseException) -> DependencyFailed:
    """The error of a task whose dependency ended with ``cause``."""
    exc = DependencyFailed(f"dependency {dependency} did not succeed "
                           f"({type(cause).__name__}: {cause}); the task never ran", dependency)
    exc.__cause__ = cause
    return exc
