"""The workloads: each drives one system through its adapter and returns its figures.

    throughput  N no-op tasks submitted one by one, until every result is in   tasks/s
    map         map(ident, M items, chunksize=C)                               items/s
    latency     R sequential submit(noop).result() round trips                 p50/p99 µs
    efficiency  S tasks of sleep(d) on 2 processes: ideal (S*d/2) / measured  ratio
    payload     P tasks each given a 1 MiB bytes argument, returning its len   MiB/s
    scale       the efficiency test with 32 workers connected at once          ratio
    memory      RSS growth of the queue's server holding K pending tasks       bytes/task
    delayed     D tasks due over one second (taskq only): how late they start  p50/p99 ms
    rate        R tasks through a queue limited to L/s (taskq only)            measured/L
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import tasks, workloads_time
from bench.systems import LIMIT_S, System

Metrics = dict[str, float]


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``QUICK`` is the smoke-run variant."""

    throughput_tasks: int = 5000
    map_items: int = 100_000
    map_chunksize: int = 1000
    latency_rounds: int = 500
    sleep_tasks: int = 200
    sleep_s: float = 0.01
    payload_tasks: int = 200
    payload_mib: int = 1
    scale_workers: int = 32
    scale_tasks: int = 640
    scale_sleep_s: float = 0.05
    pending_tasks: int = 100_000
    workers: int = 2
    delayed_tasks: int = 10_000
    rate_tasks: int = 1000
    rate_per_s: float = 200.0


FULL = Sizes()
QUICK = Sizes(throughput_tasks=300, map_items=10_000, latency_rounds=60, sleep_tasks=100,
              payload_tasks=20, scale_workers=4, scale_tasks=80, pending_tasks=10_000,
              delayed_tasks=300, rate_tasks=150, rate_per_s=100.0)


def _deadline() -> float:
    return time.monotonic() + LIMIT_S


def _result(future: Any, deadline: float) -> Any:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"the workload ran past its {LIMIT_S:g} s limit")
    return future.result(left)


def _wait_all(futures: list[Any], deadline: float) -> list[Any]:
    return [_result(f, deadline) for f in futures]


def warm_up(system: System) -> None:
    """Load the task functions in every process and open every connection, untimed."""
    deadline = _deadline()
    _wait_all([system.submit(tasks.noop) for _ in range(4 * system.procs)], deadline)
    _wait_all([system.submit(tasks.nap, 0.01) for _ in range(2 * system.procs)], deadline)
    list(system.map(tasks.ident, range(40), 10))
    _result(system.submit(tasks.size_of, b"x"), deadline)


def throughput(system: System, sizes: Sizes) -> Metrics:
    n = sizes.throughput_tasks
    deadline = _deadline()
    start = time.perf_counter()
    futures = [system.submit(tasks.noop) for _ in range(n)]
    _wait_all(futures, deadline)
    elapsed = time.perf_counter() - start
    return {"tasks_per_s": n / elapsed, "elapsed_s": elapsed}


def map_items(system: System, sizes: Sizes) -> Metrics:
    n = sizes.map_items
    start = time.perf_counter()
    out = list(system.map(tasks.ident, range(n), sizes.map_chunksize))
    elapsed = time.perf_counter() - start
    if out[-1] != n - 1 or len(out) != n:
        raise RuntimeError("map returned wrong results")
    return {"items_per_s": n / elapsed, "elapsed_s": elapsed}


def latency(system: System, sizes: Sizes) -> Metrics:
    samples: list[float] = []
    deadline = _deadline()
    for _ in range(sizes.latency_rounds):
        start = time.perf_counter_ns()
        _result(system.submit(tasks.noop), deadline)
        samples.append((time.perf_counter_ns() - start) / 1000)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_us": statistics.median(samples), "p99_us": cuts[98],
            "mean_us": statistics.fmean(samples)}


def _sleepers(system: System, n: int, seconds: float) -> Metrics:
    ideal = n * seconds / system.procs
    deadline = _deadline()
    start = time.perf_counter()
    _wait_all([system.submit(tasks.nap, seconds) for _ in range(n)], deadline)
    elapsed = time.perf_counter() - start
    return {"efficiency": ideal / elapsed, "elapsed_s": elapsed, "ideal_s": ideal}


def efficiency(system: System, sizes: Sizes) -> Metrics:
    return _sleepers(system, sizes.sleep_tasks, sizes.sleep_s)


def scale(system: System, sizes: Sizes) -> Metrics:
    return _sleepers(system, sizes.scale_tasks, sizes.scale_sleep_s)


def payload(system: System, sizes: Sizes) -> Metrics:
    size = sizes.payload_mib * 2**20
    data = os.urandom(size)
    n = sizes.payload_tasks
    deadline = _deadline()
    start = time.perf_counter()
    lengths = _wait_all([system.submit(tasks.size_of, data) for _ in range(n)], deadline)
    elapsed = time.perf_counter() - start
    if set(lengths) != {size}:
        raise RuntimeError("payload tasks returned wrong lengths")
    return {"mib_per_s": n * sizes.payload_mib / elapsed, "elapsed_s": elapsed}


def memory(system: System, sizes: Sizes) -> Metrics:
    measure = getattr(system, "pending_memory", None)
    if measure is None:
        raise RuntimeError(f"{system.name} has no server to measure")
    return measure(tasks.noop, sizes.pending_tasks)  # type: ignore[no-any-return]


def delayed(system: System, sizes: Sizes) -> Metrics:
    return workloads_time.delayed(system, sizes.delayed_tasks)


def rate(system: System, sizes: Sizes) -> Metrics:
    return workloads_time.rate(system, sizes.rate_tasks, sizes.rate_per_s)


@dataclass(frozen=True)
class Workload:
    """A workload and how the runner treats it."""

    name: str
    run: Callable[[System, Sizes], Metrics]
    primary: str  # the metric that picks the best of --repeat runs
    higher_is_better: bool
    group: str  # "pair": 2 workers; "scale": scale_workers; "server": no workers
    systems: tuple[str, ...] | None = None  # None: every system

    def workers(self, sizes: Sizes) -> int:
        return {"pair": sizes.workers, "scale": sizes.scale_workers, "server": 0}[self.group]

    def better(self, a: Metrics, b: Metrics) -> bool:
        """Is run ``a`` better than run ``b``?"""
        if self.higher_is_better:
            return a[self.primary] > b[self.primary]
        return a[self.primary] < b[self.primary]


WORKLOADS: tuple[Workload, ...] = (
    Workload("throughput", throughput, "tasks_per_s", True, "pair"),
    Workload("map", map_items, "items_per_s", True, "pair"),
    Workload("latency", latency, "p50_us", False, "pair"),
    Workload("efficiency", efficiency, "efficiency", True, "pair"),
    Workload("payload", payload, "mib_per_s", True, "pair"),
    Workload("scale", scale, "efficiency", True, "scale"),
    Workload("memory", memory, "bytes_per_task", False, "server",
             ("taskq-durable", "taskq-memory", "seed")),
    Workload("delayed", delayed, "late_p99_ms", False, "pair", ("taskq-durable", "taskq-memory")),
    Workload("rate", rate, "ratio", False, "pair", ("taskq-durable", "taskq-memory")),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
