"""Functions the dependency tests run on workers (importable there through PYTHONPATH)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def parse(text: str) -> int:
    return len(text)


def report(counts: list[int]) -> int:
    return sum(counts)


def combine(*parts: Any, **named: Any) -> Any:
    return parts, named


def total(mapping: dict[str, int], pair: tuple[int, int], items: frozenset[int]) -> int:
    return sum(mapping.values()) + sum(pair) + sum(items)


def double(x: int) -> int:
    return 2 * x


def boom(message: str) -> None:
    raise ValueError(message)


def touch(directory: str, name: str, value: Any = None) -> Any:
    """Leave a file behind (a side effect a test can look for), then return ``value``."""
    (Path(directory) / name).write_text("ran")
    return value


def slow(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def wait_for_file(path: str, value: Any, timeout: float = 60.0) -> Any:
    """Return ``value`` once ``path`` exists (a test releases it); bounded."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)
    return value


def record(directory: str, name: str, *inputs: Any) -> list[Any]:
    """Leave one file per run (a test counts the runs of each name), return name + inputs."""
    (Path(directory) / f"{name}.{time.monotonic_ns()}").write_text("ran")
    return [name, *inputs]


def runs(directory: str, name: str) -> int:
    return sum(1 for entry in Path(directory).iterdir() if entry.name.split(".")[0] == name)
