"""How many tasks a worker holds, by pool and by how long its tasks take."""

from __future__ import annotations

from taskq import defaults
from taskq.worker.config import prefetch


def test_short_tasks_fill_a_one_slot_pool_of_any_kind() -> None:
    for pool in ("processes", "threads", "asyncio"):
        assert prefetch(pool, 1, 1e-5) == defaults.PREFETCH_MAX, pool


def test_long_tasks_are_not_hoarded() -> None:
    for pool in ("processes", "threads", "asyncio"):
        assert prefetch(pool, 1, 60.0) == defaults.PREFETCH_MIN, pool


def test_many_cheap_slots_hold_a_few_each_however_short_the_tasks() -> None:
    assert prefetch("asyncio", 1000, 1e-5) == defaults.PREFETCH_PER_SLOT * 1000
    assert prefetch("threads", 8, 1e-5) == defaults.PREFETCH_MAX  # not 8 x PREFETCH_MAX
    assert prefetch("processes", 8, 1e-5) == defaults.PREFETCH_MAX * 8


def test_the_hold_follows_the_tasks_duration() -> None:
    holds = [prefetch("threads", 1, mean) for mean in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert holds == sorted(holds, reverse=True) and holds[0] > holds[-1]
