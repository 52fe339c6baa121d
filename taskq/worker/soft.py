"""Soft timeouts: ``taskq.SoftTimeout`` raised inside a running task at its ``soft_timeout``,
before its hard ``timeout`` ends it. The task may catch it, clean up, and return or raise.

    limit(seconds), around a plain function's call:
        on the main thread (a process pool's process runs its tasks there)
            ──► SIGALRM from setitimer; its handler raises SoftTimeout. A blocking call
                (time.sleep, a socket read) is interrupted too: the handler runs on EINTR.
        on another thread (the thread pool; a plain function in the asyncio pool's executor)
            ──► a timer thread raises it in the task's thread (PyThreadState_SetAsyncExc).
                It lands at the task's next Python instruction: a blocking C call (a long
                time.sleep) delays it until that call returns.
    within(coro, seconds), around an ``async def``:
        ──► the asyncio task is cancelled at the deadline, and SoftTimeout (not
            CancelledError) is thrown into the coroutine where it awaits (``_Soft``).

Each guard is disarmed when the call ends (under a lock, or a flag the handler reads): a
SoftTimeout never lands in the next task. One that lands while the guard is being disarmed
(the task returned at that very instant) is dropped.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from taskq.errors import SoftTimeout


def message(seconds: float) -> str:
    return f"ran past its soft_timeout of {seconds:g} s"


class _Guard:
    """Raise SoftTimeout in this thread after ``seconds``, until disarmed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        self._arm()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        while True:
            try:
                self._disarm()
                return
            except SoftTimeout:  # landed as the task returned: the task's outcome stands
                continue

    def _arm(self) -> None: ...  # pragma: no cover
    def _disarm(self) -> None: ...  # pragma: no cover


class _Alarm(_Guard):
    """On the main thread: SIGALRM, whose handler raises while armed."""

    armed = False
    previous: Any = None

    def _arm(self) -> None:
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise SoftTimeout(message(self.seconds))

    def _disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous if self.previous is not None
                      else signal.SIG_DFL)


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Have ``thread_id`` raise ``exc_type`` at its next instruction (None: no longer)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               None if exc_type is None
                                               else ctypes.py_object(exc_type))


class _Timer(_Guard):
    """On any other thread: a timer thread raises it asynchronously in this one."""

    def _arm(self) -> None:
        self.lock = threading.Lock()
        self.armed, self.fired = True, False
        self.thread_id = threading.get_ident()
        self.timer = threading.Timer(self.seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        with self.lock:
            if self.armed:
                self.armed, self.fired = False, True
                _raise_in(self.thread_id, SoftTimeout)

    def _disarm(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.armed = False
            if self.fired:  # one not raised yet never will be
                _raise_in(self.thread_id, None)


def limit(seconds: float) -> _Guard:
    """A guard for a plain function's call (see the module docstring)."""
    if threading.current_thread() is threading.main_thread():
        return _Alarm(seconds)
    return _Timer(seconds)
