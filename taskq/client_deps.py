"""A client's side of task dependencies: the futures found among a new task's arguments,
and the results the master must not drop before the dependents that need them reach it.

    submit(fn, [f1, f2]) ── encode_args ── TaskFuture.__reduce__ ──► Found.reduce(future)
        not done, its client open ──► pinned in its client; its id ──► TaskMsg.deps
        done OK ──► its value, pickled in place (no dependency)
        failed or cancelled ──► the new future fails at once (DependencyFailed), unsent
        its client shut down ──► DependencyError at the call
    the dependent's batch was taken by the master (or it was dropped) ──► Found.release ──►
        unpin: a dependency's result is acknowledged to the master only once no unsent
        dependent names it (until then the master could drop it before they arrive)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskq import dependencies
from taskq.errors import DependencyError, TaskCancelled, dependency_failed


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


class Found:
    """The futures found in one task's arguments (``encode_args``'s ``on_future``)."""

    __slots__ = ("failure", "ids", "pinned")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pinned: list[tuple[Any, str]] = []  # (client, task id)
        self.failure: BaseException | None = None  # a dependency that already failed

    def reduce(self, future: Any) -> tuple[Any, ...]:
        owner = future._client
        if owner._closed:
            raise DependencyError(f"future {future.task_id} belongs to a client that was shut "
                                  f"down; pass its result, or a future of an open client")
        if not future.done() and owner._pin(future.task_id):
            if future.task_id not in self.ids:
                self.ids.append(future.task_id)
            self.pinned.append((owner, future.task_id))
            return dependencies.dependency(future.task_id)
        # it ended (or is being settled now, its result already acknowledged): its outcome
        if future.cancelled():
            cause: BaseException | None = TaskCancelled(f"task {future.task_id} was cancelled")
        else:
            cause = future.exception()
        if cause is None:
            return dependencies.value(future.result())
        if self.failure is None:
            self.failure = dependency_failed(future.task_id, cause)
        return dependencies.value(None)

    def release(self) -> None:
        """The dependent reached the master, or never will: unpin what it named."""
        pinned, self.pinned = self.pinned, []
        for owner, task_id in pinned:
            owner._unpin(task_id)
