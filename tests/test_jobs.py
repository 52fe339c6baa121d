"""Collecting a named job's results (``taskq results``) against a real in-memory Broker."""

from __future__ import annotations

from typing import Any

from taskq import jobs, wire
from taskq.service import Broker
from taskq.state import BrokerState
from taskq.wire import ResultMsg, Status, TaskMsg, WorkerHello


class RacingLink:
    """Calls the broker directly; the first time the open count is asked for, the worker's
    report lands just before it: after the collector's last empty fetch."""

    def __init__(self, broker: Broker, land: list[ResultMsg]) -> None:
        self.broker, self.land = broker, land

    def call(self, method: str, *args: Any) -> Any:
        if method == "open_count" and self.land:
            self.broker.report("w1", self.land)
            self.land = []
        return getattr(self.broker, method)(*args)


def _job_with_leased_tasks(n: int) -> tuple[Broker, list[TaskMsg]]:
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20))
    outbox = jobs.outbox_of("later")
    tasks = [TaskMsg(f"later-{i}", outbox, b"f", wire.encode_args((i,), {})) for i in range(n)]
    broker.submit(tasks, durable=False)
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    assert len(broker.take("w1", n, 0)) == n
    return broker, tasks


def _ok(task: TaskMsg, value: int) -> ResultMsg:
    return ResultMsg(task.task_id, Status.OK, wire.encode_value(value), worker="host:1")


def test_results_that_land_after_the_last_fetch_are_still_collected() -> None:
    broker, tasks = _job_with_leased_tasks(5)
    broker.report("w1", [_ok(t, 10 * i) for i, t in enumerate(tasks[:2])])
    link = RacingLink(broker, [_ok(t, 10 * i) for i, t in enumerate(tasks) if i >= 2])
    results, still_open = jobs.collect(link, "later", wait=True, timeout=5)  # type: ignore[arg-type]
    assert still_open == 0
    assert sorted(r.value for r in results) == [0, 10, 20, 30, 40]
    assert broker.fetch(jobs.outbox_of("later"), [], 100, 0) == []  # all acknowledged


def test_without_wait_the_open_tasks_are_counted_and_nothing_is_lost() -> None:
    broker, tasks = _job_with_leased_tasks(3)
    link = RacingLink(broker, [_ok(tasks[0], 7)])
    results, still_open = jobs.collect(link, "later", wait=False, timeout=None)  # type: ignore[arg-type]
    assert [r.value for r in results] == [7]
    assert still_open == 2
