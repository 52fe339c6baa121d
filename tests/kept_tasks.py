"""Functions the results-by-id tests run on workers (importable there through PYTHONPATH),
and the submitter and reader those tests start as processes of their own."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def square(x: int) -> int:
    return x * x


def fails(message: str) -> None:
    raise ValueError(message)


def pair(x: int) -> tuple[int, str]:
    return x, "not json"


def a_set(x: int) -> set[int]:
    return {x}


def after(path: str, value: int, within: float = 60.0) -> int:
    """Return ``value`` once ``path`` exists (bounded)."""
    deadline = time.monotonic() + within
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return value


def submit_and_exit(address: str, key: str, ttl: float) -> None:
    """Process A: submit a square and a failure with ``result_ttl``, take both results (so
    the submitter fetched them), print the ids and exit."""
    import taskq

    with taskq.Client(address, key) as client:
        ok = client.submit(taskq.task(square, result_ttl=ttl), 7)
        bad = client.submit(taskq.task(fails, result_ttl=ttl), "no good")
        assert ok.result(60) == 49
        assert isinstance(bad.exception(60), ValueError)
        print(ok.task_id, bad.task_id, flush=True)


def read_by_id(address: str, key: str, ok_id: str, bad_id: str) -> None:
    """Process B: read both results by id; print the value and the failure's type."""
    import taskq

    with taskq.Client(address, key) as client:
        value = client.future(ok_id).result(60)
        error = client.future(bad_id).exception(60)
        print(value, type(error).__name__, error, flush=True)


if __name__ == "__main__":
    import kept_tasks  # the functions by their module's name, as workers import them

    if sys.argv[1] == "submit":
        kept_tasks.submit_and_exit(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        kept_tasks.read_by_id(*sys.argv[2:6])
