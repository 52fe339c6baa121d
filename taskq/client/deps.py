"""A client's side of task dependencies: the futures found among a new task's arguments,
and the results the master must not drop before the dependents that need them reach it.

    submit(fn, [f1, f2]) ── encode_args ── TaskFuture.__reduce__ ──► Found.reduce(future)
        not done, its client open ──► pinned in its client; its id ──► TaskMsg.deps
        done OK ──► its value, pickled in place (no dependency)
        failed or cancelled ──► the new future fails at once (DependencyFailed), unsent;
            inside allow_failure(future): its exception, pickled in place
        allow_failure(pending) ──► also named in TaskOptions.allow_failed
        its client shut down ──► DependencyError at the call
    the dependent's batch was taken by the master (or it was dropped) ──► Found.release ──►
        unpin: a dependency's result is acknowledged to the master only once no unsent
        dependent names it (until then the master could drop it before they arrive)
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from taskq import defaults
from taskq.client.future import TaskFuture
from taskq.errors import DependencyError, ResultExpired, TaskCancelled, dependency_failed
from taskq.protocol import deps
from taskq.protocol.api import BrokerAPI
from taskq.protocol.replies import ResultState


class Pins:
    """Per client (under its lock): how many unsent dependents name each of its tasks, and
    the results whose acknowledgement waits for them."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.held: set[str] = set()
        # pinned tasks that will never reach the master (cancelled before they were sent):
        # their unsent dependents fail here instead of naming an id the master never saw
        self.gone: dict[str, BaseException] = {}

    def drop(self, task_id: str, exc: BaseException) -> None:
        """A task that was never sent ended with ``exc``; its unsent dependents will too."""
        if self.count[task_id] > 0:
            self.gone[task_id] = exc

    def doomed(self, task_id: str, deps: tuple[str, ...]) -> BaseException | None:
        """The error of an unsent task one of whose deps will never reach the master."""
        dep = next((d for d in deps if d in self.gone), None) if self.gone else None
        if dep is None:
            return None
        exc = dependency_failed(dep, self.gone[dep])
        self.drop(task_id, exc)
        return exc

    def hold(self, task_id: str) -> bool:
        """Keep this result's acknowledgement back (True) while a dependent pins it."""
        if self.count[task_id] > 0:
            self.held.add(task_id)
            return True
        return False

    def unpin(self, task_id: str) -> bool:
        """One dependent no longer needs it; True if its acknowledgement may go now."""
        self.count[task_id] -= 1
        if self.count[task_id] > 0:
            return False
        del self.count[task_id]
        self.gone.pop(task_id, None)
        if task_id in self.held:
            self.held.discard(task_id)
            return True
        return False


class AllowFailure:
    """A future passed as an argument whose failure does not fail the dependent: the
    dependent gets the exception the dependency ended with in its place."""

    __slots__ = ("future",)

    def __init__(self, future: TaskFuture[Any]) -> None:
        if not isinstance(future, TaskFuture):
            raise TypeError(f"taskq.allow_failure takes a TaskFuture, not "
                            f"{type(future).__name__}")
        self.future = future

    def __reduce__(self) -> tuple[Any, ...]:
        return deps.reduce_future(self)

    def __repr__(self) -> str:
        return f"allow_failure({self.future!r})"


def allow_failure(future: TaskFuture[Any]) -> AllowFailure:
    """Pass ``allow_failure(future)`` as an argument of ``submit``: should that task fail
    (or be cancelled), the new task still runs and gets its exception as the argument."""
    return AllowFailure(future)


class Found:
    """The futures found in one task's arguments (``encode_args``'s ``on_future``)."""

    __slots__ = ("allowed", "failure", "ids", "pinned", "strict")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pinned: list[tuple[Any, str]] = []  # (client, task id)
        self.failure: BaseException | None = None  # a dependency that already failed
        self.allowed: set[str] = set()  # ids met inside allow_failure
        self.strict: set[str] = set()  # ids met bare (their failure fails the task)

    def allow_failed(self) -> tuple[str, ...]:
        """The dependencies whose failure this task takes as an argument."""
        return tuple(t for t in self.ids if t in self.allowed and t not in self.strict)

    def reduce(self, found: Any) -> tuple[Any, ...]:
        allow = isinstance(found, AllowFailure)
        future = found.future if allow else found
        (self.allowed if allow else self.strict).add(future.task_id)
        owner = future._client
        if owner._closed:
            raise DependencyError(f"future {future.task_id} belongs to a client that was shut "
                                  f"down; pass its result, or a future of an open client")
        if not future.done() and owner._pin(future.task_id):
            if future.task_id not in self.ids:
                self.ids.append(future.task_id)
            self.pinned.append((owner, future.task_id))
            return deps.dependency(future.task_id)
        # it ended (or is being settled now, its result already acknowledged): its outcome
        if future.cancelled():
            cause: BaseException | None = TaskCancelled(f"task {future.task_id} was cancelled")
        else:
            cause = future.exception()
        if cause is None:
            return deps.value(future.result())
        if allow:
            return deps.value(cause)
        if self.failure is None:
            self.failure = dependency_failed(future.task_id, cause)
        return deps.value(None)

    def failed(self, future: TaskFuture[Any]) -> bool:
        """If a dependency had failed already, fail the new task's future (True)."""
        if self.failure is None:
            return False
        self.release()
        future._begin()
        future.set_exception(self.failure)
        return True

    def release(self) -> None:
        """The dependent reached the master, or never will: unpin what it named."""
        pinned, self.pinned = self.pinned, []
        for owner, task_id in pinned:
            owner._unpin(task_id)


class Dependencies:
    """The dependency half of ``taskq.Client`` (which provides what is declared here)."""

    public_outbox: str
    _lock: threading.Lock
    _entries: dict[str, Any]
    _pins: Pins
    _ready_acks: list[str]
    _remote: BrokerAPI
    _stopped: threading.Event

    def _check_open(self) -> None: ...  # pragma: no cover
    def _enqueue_mirror(self, task_id: str) -> TaskFuture[Any]:
        raise NotImplementedError  # pragma: no cover

    def future(self, task_id: str) -> TaskFuture[Any] | None:
        """The future of a task this client submitted that has not ended yet; for any other
        task (another submitter's, or one of this client's whose result is kept for its
        ``result_ttl``), a new future of its outcome, which may be passed as an argument (a
        dependency) like any other. None for a task of this client that ended and whose
        result is not kept. ``ResultExpired`` if its result was kept and its TTL passed;
        ``DependencyError`` if the master knows no such task (never submitted, or it ended
        with no ``result_ttl`` and its result was fetched)."""
        with self._lock:
            entry = self._entries.get(task_id)
        if entry is not None:
            future: TaskFuture[Any] = entry.future
            return future
        self._check_open()
        own = task_id.startswith(f"{self.public_outbox}-")
        state = self._result_state(task_id, grace=not own)
        if state is ResultState.EXPIRED:
            raise ResultExpired(f"the result of task {task_id} expired: it ended more than "
                                f"its result_ttl ago")
        if state is ResultState.UNKNOWN:
            if own:
                return None
            raise DependencyError(f"the master knows no task {task_id!r} (never submitted, "
                                  f"or it ended with no result_ttl and its result was "
                                  f"fetched)")
        return self._enqueue_mirror(task_id)

    def _result_state(self, task_id: str, *, grace: bool) -> ResultState:
        """What the master says of this task. A submitter sends its tasks a few
        milliseconds after ``submit`` returns: an id handed over at once gets that long to
        arrive (``grace``)."""
        deadline = time.monotonic() + (defaults.DEP_LOOKUP_GRACE_S if grace else 0.0)
        while True:
            state = ResultState(self._remote.result_states([task_id])[0])
            if state is not ResultState.UNKNOWN or time.monotonic() >= deadline:
                return state
            self._stopped.wait(0.05)

    def _pin(self, task_id: str) -> bool:
        """A new task names this client's task as a dependency: until that task reaches the
        master, this one's result is not acknowledged. False if it is not open here."""
        with self._lock:
            if task_id not in self._entries:
                return False
            self._pins.count[task_id] += 1
            return True

    def _unpin(self, task_id: str) -> None:
        with self._lock:
            if self._pins.unpin(task_id):
                self._ready_acks.append(task_id)
