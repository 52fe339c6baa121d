"""Tasks for the thread and asyncio pool tests (importable by workers via PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path


async def async_sleep(seconds: float, value: object = None) -> object:
    await asyncio.sleep(seconds)
    return value


def blocking_sleep(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


async def async_block(seconds: float) -> str:
    """Blocks its event loop (a sync sleep inside an async def)."""
    time.sleep(seconds)
    return "blocked"


def where() -> tuple[int, str, bool]:
    """(pid, thread name, is an event loop running in this thread)."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    return os.getpid(), threading.current_thread().name, in_loop


async def async_where() -> tuple[int, str, bool]:
    return where()


async def cancel_noted(marker: str, seconds: float) -> None:
    """Sleeps; writes ``marker`` if it is cancelled."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        Path(marker).write_text("cancelled")
        raise


def sleep_then_mark(seconds: float, marker: str) -> str:
    time.sleep(seconds)
    Path(marker).write_text("returned")
    return "late"


def gpu_span(directory: str, name: str, seconds: float) -> tuple[str | None, object, int]:
    """Records its run like tasks_mod.span; returns (CUDA_VISIBLE_DEVICES, its units, its
    process group: the worker's, which leads its own)."""
    import tasks_mod

    import taskq

    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    tasks_mod.span(directory, name, seconds)
    return seen, taskq.current_task().resources.get("gpu"), os.getpgrp()
