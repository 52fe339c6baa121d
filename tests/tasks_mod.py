"""Task functions importable by workers in tests (tests/ is on their PYTHONPATH)."""

from __future__ import annotations

import hashlib
import os
import signal
import time


def digest(data: bytes | bytearray | memoryview | str, size: int = 0) -> tuple[str, str, bytes]:
    """The SHA-256 of the data as it arrived, its type, and ``size`` bytes back."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return hashlib.sha256(raw).hexdigest(), type(data).__name__, raw[:1] * size


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


def grow(mb: int) -> int:
    """Keep `mb` MiB alive in this process (a leak) and return the pid."""
    _LEAK.append(bytearray(mb * 1024 * 1024))
    return os.getpid()


_LEAK: list[bytearray] = []


def flaky(marker: str, failures: int) -> str:
    """Raise the first `failures` times it is called for `marker` (counted in a file)."""
    with open(marker, "a+") as fh:
        fh.seek(0)
        calls = len(fh.read())
        fh.write("x")
    if calls < failures:
        raise RuntimeError(f"failure {calls + 1}")
    return f"ok after {calls} failures"


def blob(size: int) -> bytes:
    """``size`` bytes (a large result when asked for one)."""
    return b"\x5a" * size


def raise_system_exit(code: object = 3) -> None:
    raise SystemExit(code)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("interrupted in the task")


class ExitsWhenPickled:
    """A value whose pickling raises ``exc_type(message)`` (SystemExit by default)."""

    def __init__(self, exc_type: type[BaseException] = SystemExit,
                 message: str = "no pickling") -> None:
        self.exc_type, self.message = exc_type, message

    def __reduce__(self) -> tuple[object, ...]:
        raise self.exc_type(self.message)


def return_exits_when_pickled(exc_type: type[BaseException] = SystemExit) -> ExitsWhenPickled:
    return ExitsWhenPickled(exc_type, "pickling the result stopped")


class ErrorThatExitsWhenPickled(Exception):
    """An exception whose own pickling raises SystemExit."""

    def __reduce__(self) -> tuple[object, ...]:
        raise SystemExit("pickling the exception stopped")


def raise_error_that_exits_when_pickled() -> None:
    raise ErrorThatExitsWhenPickled("boom")


def mark_run(directory: str, name: str, seconds: float = 0.0) -> str:
    """Record that this task ran (one file per run, named after the task and the pid),
    then sleep: a test counts the runs of each name."""
    with open(os.path.join(directory, f"{name}.{os.getpid()}.{time.monotonic_ns()}"), "w"):
        pass
    time.sleep(seconds)
    return name


def runs_of(directory: str, name: str) -> int:
    """How many times ``mark_run`` ran for ``name``."""
    return sum(1 for entry in os.listdir(directory) if entry.split(".")[0] == name)


def fail_first(directory: str, name: str, failures: int, kind: str = "OSError",
               seconds: float = 0.0) -> str:
    """Record the run (as ``mark_run``); raise ``kind`` (a builtin exception's name) on the
    first ``failures`` runs, or sleep ``seconds`` (past a timeout) when ``kind`` is "sleep"."""
    mark_run(directory, name)
    if runs_of(directory, name) <= failures:
        if kind == "sleep":
            time.sleep(seconds)
        else:
            import builtins

            raise getattr(builtins, kind)(f"run {runs_of(directory, name)}")
    return name


def run_times(directory: str, name: str) -> list[float]:
    """When each run of ``name`` began (CLOCK_MONOTONIC seconds, comparable across
    processes on one host), in order."""
    return sorted(int(e.split(".")[2]) / 1e9 for e in os.listdir(directory)
                  if e.split(".")[0] == name)


def span(directory: str, name: str, seconds: float) -> str:
    """Sleep, then record when this run began and ended (CLOCK_MONOTONIC ns) in a file."""
    began = time.monotonic_ns()
    time.sleep(seconds)
    with open(os.path.join(directory, f"{name}.{os.getpid()}.{began}.{time.monotonic_ns()}"),
              "w"):
        pass
    return name


def spans(directory: str, prefix: str) -> list[tuple[float, float]]:
    """(began, ended) in seconds of every ``span`` run whose name starts with ``prefix``."""
    out = []
    for entry in os.listdir(directory):
        parts = entry.split(".")
        if parts[0].startswith(prefix) and len(parts) == 4:
            out.append((int(parts[2]) / 1e9, int(parts[3]) / 1e9))
    return sorted(out)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at any moment."""
    events = sorted([(b, 1) for b, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def hold_until(path: str, limit: float = 60.0) -> str:
    """Run until ``path`` exists (a test's signal), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return path


def mark_then_hold(directory: str, name: str, release: str) -> str:
    """``mark_run``, then run until the file ``release`` exists (at most a minute)."""
    mark_run(directory, name)
    hold_until(release)
    return name


def loaded_modules() -> list[str]:
    """The taskq, ssl and typer modules the process running this task has loaded."""
    import sys

    return sorted(m for m in sys.modules if m.split(".")[0] in ("taskq", "ssl", "typer"))


def terminate_child() -> int:
    """Start a program, send it SIGTERM and return its exit status (-15 if it had the
    default handling of SIGTERM)."""
    import subprocess

    proc = subprocess.Popen(["sleep", "30"])
    proc.terminate()
    return proc.wait(20)
