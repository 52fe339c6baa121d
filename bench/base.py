"""What every system under test offers a workload, and the time bounds they all keep
(``bench.systems`` starts taskq, ``bench.peers`` its peers; both build on this)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

START_TIMEOUT_S = 120.0  # 32 cold interpreters on two cores take a while to import
CALL_TIMEOUT_S = 60.0
LIMIT_S = 180.0  # no workload may take longer: a hang or a collapse fails it, the run goes on


class FutureLike(Protocol):
    def result(self, timeout: float | None = None) -> Any: ...


class System(Protocol):
    """What a workload may use of a system under test."""

    name: str
    procs: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> FutureLike: ...

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: int) -> Iterator[Any]:
        ...

    def shutdown(self) -> None: ...
