"""The broker's remote interface, typed: one method per ``taskq.master.broker.Broker`` method.

Clients, workers and the CLI call the master only through a ``Remote``; mypy checks every
call against the signatures here, and a test checks these against ``Broker`` itself (same
names, same parameters), so a renamed method or a new parameter fails before any process
starts::

    client / worker / CLI ── Remote.take(worker_id, n, wait) ── call("take", ...) ──►
        Link.call (reconnecting) or a proxy's call (while joining) ══► Broker.take

An error raised by a Broker method on the master arrives as ``taskq.errors.MasterError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from taskq.protocol.api_prims import RemotePrimitives
from taskq.protocol.messages import ResultMsg, Schedule, TaskMsg, WorkerHello
from taskq.protocol.replies import (
    CancelOutcome,
    ClusterStatus,
    Explanation,
    Fetched,
    MasterInfo,
    QueueRow,
)

Call = Callable[..., Any]  # call(method_name, *args) -> the method's return value


class Remote(RemotePrimitives):
    """The master's broker, as seen from another process; see the module docstring (its
    calls on shared primitives come from ``RemotePrimitives``)."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    # ------------------------------------------------------------------ submitters

    def hello(self, outbox: str, ended: list[str] | None = None) -> MasterInfo:
        return cast(MasterInfo, self._call("hello", outbox, ended))

    def submit(self, tasks: list[TaskMsg], durable: bool = True) -> int:
        return cast(int, self._call("submit", tasks, durable))

    def fetch(self, outbox: str, ack: list[str], max_n: int, wait: float) -> Fetched:
        return cast(Fetched, self._call("fetch", outbox, ack, max_n, wait))

    def open_count(self, outbox: str) -> int | None:
        return cast("int | None", self._call("open_count", outbox))

    def known(self, task_ids: list[str]) -> list[str]:
        return cast("list[str]", self._call("known", task_ids))

    def cancel(self, task_ids: list[str], wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome:
        return cast(CancelOutcome, self._call("cancel", task_ids, wait, outbox, running))

    def cancel_tasks(self, task_ids: list[str], job: str = "", running: bool = True,
                     ) -> CancelOutcome:
        return cast(CancelOutcome, self._call("cancel_tasks", task_ids, job, running))

    def running_tasks(self, job: str) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._call("running_tasks", job))

    # ------------------------------------------------------------------ schedules

    def schedule_add(self, spec: Schedule) -> bool:
        return cast(bool, self._call("schedule_add", spec))

    def schedule_remove(self, name: str) -> bool:
        return cast(bool, self._call("schedule_remove", name))

    def schedule_pause(self, name: str, paused: bool) -> bool:
        return cast(bool, self._call("schedule_pause", name, paused))

    def schedules(self) -> list[Schedule]:
        return cast("list[Schedule]", self._call("schedules"))

    # ------------------------------------------------------------------ queues

    def queue_set(self, name: str, rate: float, concurrency: int) -> None:
        self._call("queue_set", name, rate, concurrency)

    def queues(self) -> list[QueueRow]:
        return cast("list[QueueRow]", self._call("queues"))

    # ------------------------------------------------------------------ workers

    def register(self, hello: WorkerHello) -> MasterInfo:
        return cast(MasterInfo, self._call("register", hello))

    def heartbeat(self, worker_id: str, held: list[str], running: int,
                  memory: int = 0, progress: dict[str, Any] | None = None) -> bool:
        return cast(bool, self._call("heartbeat", worker_id, held, running, memory, progress))

    def take(self, worker_id: str, n: int, wait: float) -> list[TaskMsg]:
        return cast("list[TaskMsg]", self._call("take", worker_id, n, wait))

    def report(self, worker_id: str, results: list[ResultMsg],
               started: list[str] | None = None) -> None:
        self._call("report", worker_id, results, started)

    def release(self, worker_id: str, task_ids: list[str], goodbye: bool = False) -> None:
        self._call("release", worker_id, task_ids, goodbye)

    def control(self, worker_id: str, answers: dict[str, bool], wait: float) -> list[str]:
        return cast("list[str]", self._call("control", worker_id, answers, wait))

    # ------------------------------------------------------------------ admin

    def status(self) -> ClusterStatus:
        return cast(ClusterStatus, self._call("status"))

    def info(self) -> MasterInfo:
        return cast(MasterInfo, self._call("info"))

    def monitor(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("monitor"))

    def metrics(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call("metrics"))

    def history(self, job: str | None = None, failed: bool = False,
                since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._call("history", job, failed, since, limit))

    def inspect(self, task_id: str) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", self._call("inspect", task_id))

    def explain(self, task_id: str) -> Explanation:
        return cast(Explanation, self._call("explain", task_id))


EXPOSED = tuple(name for cls in (Remote, RemotePrimitives) for name in cls.__dict__
                if not name.startswith("_"))
