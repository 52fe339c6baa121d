"""Tasks for the hard-cancel and progress tests: each waits on a file the test creates (never
on a fixed sleep) and leaves marker files the test reads."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import taskq

WAIT_S = 120.0  # longest a task waits for its file: a test that forgets it still ends


def _started(marker: str) -> None:
    with open(marker, "a") as f:  # one line per start: a second line is a second run
        f.write(f"{os.getpid()}\n")


def block(release: str, marker: str, value: object = None) -> object:
    """Say it started (its pid, in ``marker``), then wait until ``release`` exists."""
    _started(marker)
    end = time.monotonic() + WAIT_S
    while not os.path.exists(release) and time.monotonic() < end:
        time.sleep(0.01)
    return value


async def async_block(release: str, marker: str, value: object = None) -> object:
    """``block`` as a coroutine; writes ``marker``.cancelled if it is cancelled."""
    _started(marker)
    end = time.monotonic() + WAIT_S
    try:
        while not os.path.exists(release) and time.monotonic() < end:
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        Path(f"{marker}.cancelled").write_text("yes")
        raise
    return value


def starts(marker: str) -> list[int]:
    """The pids of each start a task wrote to ``marker``."""
    try:
        return [int(line) for line in Path(marker).read_text().split()]
    except FileNotFoundError:
        return []


def progress_then_block(release: str, marker: str) -> str:
    """Report 3 of 10, say it started, wait for ``release``, then report 10 of 10."""
    taskq.report_progress(3, 10, "parsing")
    _started(marker)
    block(release, f"{marker}.wait")
    taskq.report_progress(10, 10, "done")
    return "finished"


async def async_progress_then_block(release: str, marker: str) -> str:
    taskq.report_progress(3, 10, "parsing")
    await async_block(release, marker)
    return "finished"


def report_many(n: int, release: str, marker: str) -> int:
    """Report ``n`` times in a tight loop, then wait for ``release`` (so the test reads the
    master's count while the task still runs)."""
    for i in range(1, n + 1):
        taskq.report_progress(i, n)
    _started(marker)
    block(release, f"{marker}.wait")
    return n


def context() -> tuple[str, int, str, str]:
    """What ``taskq.current_task()`` says inside the task."""
    task = taskq.current_task()
    return task.task_id, task.attempt, task.queue, task.worker


async def async_context() -> tuple[str, int, str, str]:
    return context()


def flaky_context(directory: str) -> tuple[str, int, str, str]:
    """Fails on its first attempt, then returns its context (the attempt is 1)."""
    marker = Path(directory) / "flaky"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("first attempt fails")
    return context()


def bad_progress(done: object, total: object = None) -> None:
    taskq.report_progress(done, total)  # type: ignore[arg-type]
