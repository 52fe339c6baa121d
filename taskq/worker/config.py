"""What a worker is configured with (``WorkerConfig``, built by ``taskq worker``) and the
pool it runs tasks in (``make_pool``: processes, threads or an asyncio loop)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from taskq import defaults
from taskq.net.tls import TLS
from taskq.worker import execute, setup
from taskq.worker.pools.asyncio import AsyncioPool
from taskq.worker.pools.local import LocalPool
from taskq.worker.pools.process import ProcessPool
from taskq.worker.pools.threads import ThreadPool


@dataclass(kw_only=True, slots=True)
class WorkerConfig:
    address: tuple[str, int]
    authkey: bytes
    procs: int
    queues: tuple[str, ...] = ("default",)
    grace: float = defaults.GRACE_S
    max_tasks_per_child: int | None = None
    max_memory_mb: float | None = None
    heartbeat: float = defaults.HEARTBEAT_S
    connect_for: float = defaults.RECONNECT_FOR_S
    tls: TLS | None = None
    pool: str = "processes"  # one of POOLS; procs is then its concurrency
    resources: tuple[tuple[str, float], ...] = ()  # what it has (--resources gpu=2)
    paths: tuple[str, ...] = ()  # directories put first on sys.path where tasks run
    setup: tuple[str, ...] = ()  # "module:function" hooks run where tasks run, before them


POOLS = ("processes", "threads", "asyncio")


def make_pool(config: WorkerConfig) -> ProcessPool | LocalPool:
    """The pool that runs this worker's tasks; ValueError for an unknown kind."""
    if config.pool == "processes":
        return ProcessPool(config.procs, execute.run,
                           max_tasks_per_child=config.max_tasks_per_child,
                           max_memory_mb=config.max_memory_mb,
                           initializer=functools.partial(setup.in_process, config.paths,
                                                         config.setup),
                           wait_ready=bool(config.setup))
    if config.pool == "threads":
        return ThreadPool(config.procs, execute.run, config.setup)
    if config.pool == "asyncio":
        return AsyncioPool(config.procs, setup=config.setup)
    raise ValueError(f"unknown pool {config.pool!r}: expected one of {', '.join(POOLS)}")

def prefetch(pool: str, slots: int, mean_s: float) -> int:
    """How many tasks a worker holds: about PREFETCH_TARGET_S of work per slot, given how
    long its tasks take (``mean_s``); a thread or asyncio pool as much, but no more than
    PREFETCH_MAX in all or PREFETCH_PER_SLOT a slot, whichever is more."""
    per_slot = math.ceil(defaults.PREFETCH_TARGET_S / max(mean_s, 1e-6))
    per_slot = max(defaults.PREFETCH_MIN, min(defaults.PREFETCH_MAX, per_slot))
    if pool != "processes":  # many cheap slots: short tasks fill a few
        return min(per_slot * slots,
                   max(defaults.PREFETCH_MAX, defaults.PREFETCH_PER_SLOT * slots))
    return per_slot * slots
