"""What a pool is given and what it hands back, the same for every kind of pool (processes,
threads, asyncio): a Job in, exactly one Outcome out (or the Job itself handed back).

    submit(Job(task_id, payload, timeout)) ──► runner(payload) ──► Outcome(task_id, kind, ...)
        kind: DONE (value) | CRASHED (detail) | TIMED_OUT (detail) | CANCELLED (kill_task)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Job", "Outcome", "OutcomeKind"]


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
