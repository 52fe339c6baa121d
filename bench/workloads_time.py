"""Workloads of time, for taskq only (its peers here have no delayed tasks nor rate limits):

    delayed   D tasks submitted to start at times spread over one second   lateness p50/p99 ms
    rate      R no-op tasks through a queue limited to L tasks a second    measured / L
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bench import tasks
from bench.systems import LIMIT_S, System

Metrics = dict[str, float]


def _client(system: System) -> Any:
    client = getattr(system, "client", None)
    if client is None or not hasattr(client, "submit_at"):
        raise RuntimeError(f"{system.name} has no delayed tasks")
    return client


def delayed(system: System, n: int) -> Metrics:
    """How late delayed tasks start after their time, on an idle cluster."""
    client = _client(system)
    base = time.time() + 1.0 + n / 20_000  # after the submits themselves are done
    dues = [base + (i % 1000) / 1000 for i in range(n)]
    futures = [client.submit_at(datetime.fromtimestamp(d, UTC), tasks.started)
               for d in dues]
    late = [(f.result(LIMIT_S) - due) * 1000 for f, due in zip(futures, dues, strict=True)]
    cuts = statistics.quantiles(late, n=100, method="inclusive")
    early = sum(1 for x in late if x < -1.0)  # more than a millisecond early: a bug
    return {"late_p50_ms": statistics.median(late), "late_p99_ms": cuts[98],
            "late_max_ms": max(late), "early": float(early)}


def rate(system: System, n: int, per_s: float) -> Metrics:
    """The rate tasks start at through a rate-limited queue, against the limit."""
    client = _client(system)
    set_rate = getattr(system, "set_rate", None)
    if set_rate is None:
        raise RuntimeError(f"{system.name} has no rate limits")
    set_rate("default", per_s)
    try:
        starts = sorted(f.result(LIMIT_S) for f in [client.submit(tasks.started)
                                                     for _ in range(n)])
    finally:
        set_rate("default", 0.0)
    burst = int(max(per_s, 1.0))  # a second's worth may start at once
    steady = starts[burst:]
    measured = (len(steady) - 1) / (steady[-1] - steady[0])
    return {"measured_per_s": measured, "limit_per_s": per_s, "ratio": measured / per_s}
