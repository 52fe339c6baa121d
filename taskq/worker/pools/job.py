"""What a pool is given and what it hands back, the same for every kind of pool (processes,
threads, asyncio): a Job in, exactly one Outcome out (or the Job itself handed back).

    submit(Job(task_id, payload, timeout)) ──► runner(payload) ──► Outcome(task_id, kind, ...)
        kind: DONE (value) | CRASHED (detail) | TIMED_OUT (detail) | CANCELLED (kill_task)
    OutcomeQueue: how the worker collects them (get_outcomes, take_started, wake, in_flight)
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Job", "Outcome", "OutcomeKind", "OutcomeQueue"]


class OutcomeKind(StrEnum):
    DONE = "done"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # stopped while it ran (kill_task)


@dataclass(frozen=True, slots=True)
class Job:
    task_id: str
    payload: Any  # picklable (pickle.PickleBuffer parts go uncopied); runner(payload) gets it
    timeout: float | None = None  # hard limit in seconds for this job's run


@dataclass(frozen=True, slots=True)
class Outcome:
    task_id: str
    kind: OutcomeKind
    value: Any = None  # the runner's return value when DONE
    detail: str = ""  # how it ended when CRASHED or TIMED_OUT
    duration: float = 0.0  # seconds the job ran (best estimate)


class OutcomeQueue:
    """The collecting side every pool shares: outcomes and starts wait under ``_cond`` until
    the worker takes them. A pool sets these fields up and appends to them under ``_cond``."""

    _cond: threading.Condition
    _outcomes: deque[Outcome]
    _started_out: list[str]  # ids of jobs that began running, not yet taken
    _in_flight: int  # jobs submitted whose outcome get_outcomes has not returned yet
    _woken: bool

    def _failure(self) -> BaseException | None:
        """Why the pool can no longer run jobs (None: it can)."""
        return None

    def get_outcomes(self, timeout: float, starts_wake: bool = True) -> list[Outcome]:
        """Every outcome available, waiting up to ``timeout`` s for one (or, with
        ``starts_wake``, for a job to begin: see take_started); [] on timeout or wake."""
        def ready() -> object:
            return self._outcomes or self._woken or self._failure() is not None or (
                starts_wake and self._started_out)

        with self._cond:
            if not ready():
                self._cond.wait_for(ready, timeout)
            self._woken = False
            failure = self._failure()
            if failure is not None and not self._outcomes:
                raise RuntimeError("pool driver failed") from failure
            out = list(self._outcomes)
            self._outcomes.clear()
            self._in_flight -= len(out)
            return out

    def take_started(self) -> list[str]:
        """Ids of the jobs that began running since the last call (get_outcomes returns
        when there are)."""
        with self._cond:
            started, self._started_out = self._started_out, []
            return started

    def wake(self) -> None:
        """Make a blocked (or the next) get_outcomes return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def in_flight(self) -> int:
        """Jobs submitted whose outcome get_outcomes has not returned yet."""
        return self._in_flight
