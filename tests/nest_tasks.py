"""Functions the tests of callbacks, allow_failure and tasks that submit tasks run on
workers (importable there through PYTHONPATH)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import taskq


def mark(directory: str, name: str, text: str = "ran") -> None:
    """Leave one file per call (a test counts the calls of each name)."""
    (Path(directory) / f"{name}.{time.monotonic_ns()}").write_text(text)


def marks(directory: str, name: str) -> list[str]:
    return [p.read_text() for p in sorted(Path(directory).iterdir())
            if p.name.split(".")[0] == name]


def fail(directory: str, name: str, release: str = "") -> None:
    """Mark the run; once ``release`` exists (if named; at most a minute), raise."""
    mark(directory, name)
    deadline = time.monotonic() + 60
    while release and not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    raise ValueError(f"{name} failed")


def succeed(value: Any) -> Any:
    return value


def on_failure(directory: str, task_id: str, exc: BaseException) -> None:
    """A callback (bound to ``directory`` with functools.partial): one file per call."""
    mark(directory, "failure", f"{task_id} {type(exc).__name__}: {exc}")


def on_success(directory: str, task_id: str, value: Any) -> None:
    mark(directory, "success", f"{task_id} {value!r}")


def takes(value: Any) -> str:
    """What a dependent got: a value, or an exception (allow_failure)."""
    if isinstance(value, BaseException):
        return f"exception {type(value).__name__}: {value}"
    return f"value {value!r}"


def child(i: int) -> int:
    return i


def parent_sum(n: int) -> int:
    """Submit ``n`` children from inside this task and wait for each (its slot is lent)."""
    client = taskq.current_client()
    futures = [client.submit(child, i) for i in range(n)]
    return sum(f.result(120) for f in futures)


def parent_map(n: int) -> int:
    return sum(taskq.current_client().map(child, range(n), timeout=120))


def long_child(directory: str, i: int, release: str) -> int:
    """Mark the start; run until ``release`` exists (at most a minute); mark the end."""
    mark(directory, f"child{i}-started")
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    mark(directory, f"child{i}-done")
    return i


def parent_waits(directory: str, n: int, release: str) -> list[int]:
    """Submit ``n`` long children, say their ids in ``children``, wait for them all."""
    client = taskq.current_client()
    futures = [client.submit(long_child, directory, i, release) for i in range(n)]
    (Path(directory) / "children").write_text("\n".join(f.task_id for f in futures))
    return [f.result(120) for f in futures]


def grandparent(n: int) -> int:
    """Two children that each wait on ``n`` children of their own."""
    client = taskq.current_client()
    return sum(f.result(120) for f in [client.submit(parent_sum, n) for _ in range(2)])


def client_of_this_process() -> tuple[int, str]:
    """(this process's id, the outbox of its task client)."""
    import os

    return os.getpid(), taskq.current_client().public_outbox
