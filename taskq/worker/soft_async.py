"""``SoftTimeout`` in a coroutine (an ``async def`` task): at the deadline its asyncio task is
cancelled, and the CancelledError thrown in at its ``await`` becomes ``SoftTimeout``, which
it may catch and go on awaiting to clean up. Apart from ``taskq.worker.soft`` so that a pool
process running plain functions never loads asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from taskq.errors import SoftTimeout
from taskq.worker.soft import message


class _Soft:
    """Awaits ``coro``; after ``fire()`` the first CancelledError thrown in by its asyncio
    task is replaced by SoftTimeout (and the task's cancel request is withdrawn)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], seconds: float) -> None:
        self.coro, self.seconds = coro, seconds
        self.fired = self.thrown = False

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value, error = self.coro, None, None
        while True:
            try:
                step = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = yield step
            except asyncio.CancelledError as exc:
                error = self._instead(exc)
            except BaseException as exc:  # passed on to the coroutine as is
                error = exc

    def _instead(self, exc: asyncio.CancelledError) -> BaseException:
        if not self.fired or self.thrown:
            return exc  # a cancel of its own (the hard timeout, kill_task)
        self.thrown = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return SoftTimeout(message(self.seconds))


async def within(coro: Coroutine[Any, Any, Any], seconds: float | None) -> Any:
    """Await ``coro`` in the current asyncio task; SoftTimeout is thrown into it after
    ``seconds`` (None: never)."""
    if seconds is None:
        return await coro
    task = asyncio.current_task()
    soft = _Soft(coro, seconds)

    def fire() -> None:
        soft.fired = True
        if task is not None:
            task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        return await soft
    finally:
        handle.cancel()
