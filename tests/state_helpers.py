"""Builders for tests of the broker's pure state: a state, tasks, workers and results."""

from __future__ import annotations

from taskq.master.state import BrokerState, WorkerInfo
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions

LOST_AFTER = 10.0


def make_state(*, max_lost: int = 3, max_payload: int = 1000) -> BrokerState:
    return BrokerState(lost_after=LOST_AFTER, max_lost=max_lost, max_payload=max_payload)


def task(task_id: str, *, outbox: str = "box", priority: int = 0, queue: str = "default",
         retries: int = 0, args_size: int = 1) -> TaskMsg:
    options = TaskOptions(retries=retries, priority=priority, queue=queue)
    return TaskMsg(task_id, outbox, b"f", b"a" * args_size, options)


def join(state: BrokerState, worker_id: str, now: float = 0.0,
         queues: tuple[str, ...] = ("default",)) -> None:
    state.register(WorkerInfo(worker_id, "host", 1, 1, queues), now)


def ok(task_id: str, body: bytes = b"value", worker: str = "") -> ResultMsg:
    return ResultMsg(task_id, Status.OK, body, worker=worker)


def err(task_id: str, body: bytes = b"boom") -> ResultMsg:
    return ResultMsg(task_id, Status.ERROR, body)


def ids(msgs: list[TaskMsg]) -> list[str]:
    return [m.task_id for m in msgs]


def fetch_all(state: BrokerState, outbox: str = "box") -> dict[str, ResultMsg]:
    return {r.task_id: r for r in state.fetch(outbox, [], 1000).results}
