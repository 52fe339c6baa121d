"""Unit tests of the autoscaling target (``taskq_desired_workers``) in the broker state:
queued and leased tasks, limit keys, a queue's concurrency, and the workers' size."""

from __future__ import annotations

from state_helpers import ok

from taskq.master.state import BrokerState, WorkerInfo
from taskq.master.state.autoscale import desired_workers
from taskq.master.state.limits import QueueLimit
from taskq.protocol.messages import TaskMsg, TaskOptions

LOST_AFTER = 10.0


def state_with(*, procs: int = 0, queues: tuple[str, ...] = ("default",)) -> BrokerState:
    state = BrokerState(lost_after=LOST_AFTER, max_lost=3, max_payload=1000)
    if procs:
        state.register(WorkerInfo("w", "host", 1, procs, queues), 0.0)
    return state


def t(task_id: str, queue: str = "default", key: str = "", limit: int = 0,
      run_at: float = 0.0) -> TaskMsg:
    options = TaskOptions(queue=queue, limit_key=key, limit=limit, run_at=run_at)
    return TaskMsg(task_id, "box", b"f", b"a", options)


def desired(state: BrokerState) -> dict[str, int]:
    return desired_workers(state.queues, state.limits, state.sizes)


def test_a_fresh_master_wants_no_worker_and_still_reports_the_default_queue() -> None:
    assert desired(state_with()) == {"default": 0}


def test_queued_tasks_ask_for_workers_of_the_size_last_seen_rounded_up() -> None:
    state = state_with(procs=4)
    state.submit([t(f"a{i}") for i in range(9)], now=0)
    assert desired(state) == {"default": 3}  # 9 tasks, 4 at once per worker


def test_before_any_worker_each_task_counts_one_worker() -> None:
    state = state_with()
    state.submit([t(f"a{i}") for i in range(3)], now=0)
    assert desired(state) == {"default": 3}


def test_leased_tasks_count_and_ended_ones_do_not() -> None:
    state = state_with(procs=2)
    state.submit([t(f"a{i}") for i in range(3)], now=0)
    assert len(state.lease("w", 2, 0.0)) == 2
    assert desired(state) == {"default": 2}  # 2 running + 1 queued, 2 per worker
    state.complete("w", [ok("a0"), ok("a1")], now=1)
    assert desired(state) == {"default": 1}
    assert len(state.lease("w", 2, 1.0)) == 1
    state.complete("w", [ok("a2")], now=2)
    assert desired(state) == {"default": 0}


def test_a_queues_concurrency_limit_caps_the_target() -> None:
    state = state_with(procs=2)
    state.limits.set("default", QueueLimit(concurrency=3))
    state.submit([t(f"a{i}") for i in range(20)], now=0)
    assert desired(state) == {"default": 2}  # 3 at once -> 2 workers of 2


def test_a_rate_limit_does_not_cap_it() -> None:
    state = state_with(procs=1)
    state.limits.set("default", QueueLimit(rate=0.5))
    state.submit([t(f"a{i}") for i in range(4)], now=0)
    assert desired(state) == {"default": 4}


def test_a_limit_key_caps_its_tasks_at_its_limit_less_what_runs() -> None:
    state = state_with(procs=1)
    state.submit([t(f"k{i}", key="tenant", limit=2) for i in range(5)], now=0)
    state.submit([t("free")], now=0)
    assert desired(state) == {"default": 3}  # 2 of the key + the free one
    assert len(state.lease("w", 1, 0.0)) == 1  # one of the key runs (the oldest)
    assert desired(state) == {"default": 3}  # 1 running + 1 more of the key + free


def test_tasks_held_back_until_a_time_do_not_count_until_due() -> None:
    state = state_with(procs=1)
    state.wall_offset = 0.0
    state.submit([t("later", run_at=100.0), t("now")], now=0)
    assert desired(state) == {"default": 1}
    state.promote(100.0)
    assert desired(state) == {"default": 2}


def test_each_queue_has_its_own_figure_and_worker_size() -> None:
    state = state_with(procs=4)
    state.register(WorkerInfo("g", "host", 2, 1, ("gpu",)), 0.0)
    state.submit([t(f"a{i}") for i in range(5)], now=0)
    state.submit([t(f"g{i}", queue="gpu") for i in range(3)], now=0)
    assert desired(state) == {"default": 2, "gpu": 3}


def test_a_worker_that_left_still_gives_the_size() -> None:
    state = state_with(procs=8)
    state.forget_worker("w")
    state.submit([t(f"a{i}") for i in range(9)], now=0)
    assert desired(state) == {"default": 2}
