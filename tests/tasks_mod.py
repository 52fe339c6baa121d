"""Task functions importable by workers in tests (tests/ is on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import time


def add(a: int, b: int = 0) -> int:
    return a + b


def echo(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
    return args, kwargs


def pid() -> int:
    return os.getpid()


def sleep_then(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def fail(message: str) -> None:
    raise KeyError(message)


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Unpicklable(Exception):
    def __init__(self, lock: object) -> None:
        super().__init__("carries a lock")
        self.lock = lock


def raise_unpicklable() -> None:
    import threading

    raise Unpicklable(threading.Lock())


def return_lock() -> object:
    import threading

    return threading.Lock()
