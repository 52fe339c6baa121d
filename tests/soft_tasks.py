"""Tasks for the expiry and soft timeout tests: each records that it ran in a side file, and
says how a soft timeout found it."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import taskq


def _mark(directory: str, name: str, what: str = "ran") -> None:
    with open(os.path.join(directory, f"{name}.{what}.{os.getpid()}.{time.monotonic_ns()}"),
              "w"):
        pass


def marks(directory: str, name: str, what: str = "ran") -> int:
    """How many times ``name`` left the mark ``what``."""
    return sum(1 for e in os.listdir(directory) if e.split(".")[:2] == [name, what])


def work(seconds: float, step: float = 0.05) -> None:
    """Work (sleeps of ``step``) for ``seconds``, and let a SoftTimeout through."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(step)


def clean_up_on_soft(directory: str, name: str, seconds: float = 30.0,
                     step: float = 0.05) -> str:
    """Work (sleeps of ``step``) for ``seconds``; on SoftTimeout, clean up and return
    "cleaned" (on the main thread of a pool process one long sleep is interrupted)."""
    _mark(directory, name)
    try:
        work(seconds, step)
    except taskq.SoftTimeout:
        _mark(directory, name, "cleaned")
        return "cleaned"
    return "finished"


async def aclean_up_on_soft(directory: str, name: str, seconds: float = 30.0) -> str:
    """``clean_up_on_soft`` as a coroutine: SoftTimeout is thrown in where it awaits, and
    it may await again while it cleans up."""
    _mark(directory, name)
    try:
        await asyncio.sleep(seconds)
    except taskq.SoftTimeout:
        await asyncio.sleep(0.01)
        _mark(directory, name, "cleaned")
        return "cleaned"
    return "finished"


def ignore_soft(directory: str, name: str, seconds: float = 30.0) -> str:
    """Note SoftTimeout and work on (until the hard timeout ends it)."""
    _mark(directory, name)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except taskq.SoftTimeout:
            _mark(directory, name, "ignored")
    return "finished"


def where() -> str:
    """The thread the task runs on ("main" in a pool process)."""
    return "main" if threading.current_thread() is threading.main_thread() else "thread"
