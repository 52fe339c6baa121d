"""Task functions the benchmark ships to workers; importable there as ``bench.tasks``.

Each is tiny on purpose: the benchmark measures the cost of moving work around, not of
doing it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def noop() -> None:
    """Do nothing: the cost of a task is then all overhead."""
    return None


def ident(x: Any) -> Any:
    """Return the argument (the function ``map`` workloads apply to each item)."""
    return x


def nap(seconds: float) -> float:
    """Sleep, standing in for work that does not need a CPU."""
    time.sleep(seconds)
    return seconds


def size_of(data: bytes) -> int:
    """Length of a payload: the result is small, so only the argument travels far."""
    return len(data)


def run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    """Apply ``fn`` to every argument tuple of a chunk (how peers without chunking map)."""
    return [fn(*args) for args in chunk]


def started() -> float:
    """The wall-clock time the task began (for lateness and rate measurements)."""
    return time.time()


async def anap(seconds: float) -> float:
    """``nap`` for event loops: waits without a thread."""
    import asyncio

    await asyncio.sleep(seconds)
    return seconds


def inc(x: int) -> int:
    """One more (a graph's fan-out step)."""
    return x + 1


def total(xs: list[int]) -> int:
    """The sum of its inputs (a graph's fan-in step)."""
    return sum(xs)


def record_run(directory: str, seconds: float = 0.0) -> str:
    """Leave one file per run named after this task's id (the chaos benchmark counts the
    runs of each task, and of each schedule tick), then sleep ``seconds``."""
    import taskq

    task_id = taskq.current_task().task_id
    with open(os.path.join(directory, f"{task_id}~{os.getpid()}~{time.monotonic_ns()}"), "w"):
        pass
    time.sleep(seconds)
    return task_id
