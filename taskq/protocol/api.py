"""The broker's remote interface, declared once: ``BrokerAPI``, and ``Remote`` built from it.

Every remote call is one method of the ``BrokerAPI`` Protocol: its full signature (flags
and optional parameters keyword-only) and which of its arguments are claims
(``taskq.protocol.calls``). Everything else follows from it:

- ``Remote(call)``: the peer's side, one generated method per call, typed as ``BrokerAPI``;
- ``taskq.master.broker.Broker`` implements it (mypy checks it does);
- ``taskq.master.owned.Owned`` serves exactly its calls, checking the declared claims;
- ``EXPOSED``: the names the manager's proxy and server expose.

    client / worker / CLI ── Remote.take(worker_id, h, wait=w) ── call("take", id, h, w) ──►
        Link.call (reconnecting) or a proxy's call (while joining) ══► Owned ─► Broker.take

An error raised by a Broker method on the master arrives as ``taskq.errors.MasterError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from taskq.protocol.api_prims import PrimitivesAPI
from taskq.protocol.calls import claims, declared, sender, shared
from taskq.protocol.messages import Beat, ResultMsg, Schedule, TaskMsg, WorkerHello
from taskq.protocol.replies import (
    Beaten,
    CancelOutcome,
    ClusterStatus,
    Explanation,
    Fetched,
    Leased,
    MasterInfo,
    QueueRow,
    Receipt,
    Replayed,
    ResultState,
)

Call = Callable[..., Any]  # call(method_name, *args) -> the method's return value


class BrokerAPI(PrimitivesAPI, Protocol):
    """Every call a peer makes on the master (its calls on shared primitives come from
    ``PrimitivesAPI``); see the module docstring."""

    # ------------------------------------------------------------------ submitters

    @claims(outbox="outbox", own_ids="ended")
    def hello(self, outbox: str, *, ended: list[str] | None = None) -> MasterInfo: ...

    @claims(tasks="tasks")
    def submit(self, tasks: list[TaskMsg], *, durable: bool = True) -> int: ...

    @claims(outbox="outbox")
    def fetch(self, outbox: str, ack: list[str], *, max_n: int, wait: float) -> Fetched: ...

    @claims(outbox="outbox")
    def open_count(self, outbox: str) -> int | None: ...

    @claims(outbox="outbox")
    def flush(self, outbox: str, *, upto: int = 0, wait: float = 0.0) -> int: ...

    @shared
    def known(self, task_ids: list[str]) -> list[str]: ...

    @shared  # a reader's, by id: any client holding the key
    def result_states(self, task_ids: list[str]) -> list[ResultState]: ...

    @claims(outbox="outbox", own_ids="task_ids")
    def cancel(self, task_ids: list[str], *, wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome: ...

    @shared  # an operator's: any task by its id, or a job by its name
    def cancel_tasks(self, task_ids: list[str], *, job: str = "",
                     running: bool = True) -> CancelOutcome: ...

    @shared
    def running_tasks(self, job: str) -> list[dict[str, Any]]: ...

    @shared  # an operator's: the tasks that failed for good, whoever submitted them
    def dead_letters(self, *, queue: str | None = None, since: float | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]: ...

    @claims(outbox="outbox", own_ids="new_ids")  # any failed task; its replay is the caller's
    def replay(self, task_ids: list[str], new_ids: list[str], *, outbox: str,
               echo: bool = False) -> list[Replayed]: ...

    # ------------------------------------------------------------------ schedules

    @shared
    def schedule_add(self, spec: Schedule) -> bool: ...

    @shared
    def schedule_remove(self, name: str) -> bool: ...

    @shared
    def schedule_pause(self, name: str, *, paused: bool) -> bool: ...

    @shared
    def schedules(self) -> list[Schedule]: ...

    # ------------------------------------------------------------------ queues

    @shared
    def queue_set(self, name: str, *, rate: float, concurrency: int) -> None: ...

    @shared
    def queues(self) -> list[QueueRow]: ...

    @shared
    def queue_pause(self, name: str, *, paused: bool) -> bool | None: ...

    @shared
    def queue_purge(self, name: str) -> int | None: ...

    @shared  # an operator's: any worker by the public id ``taskq status`` shows
    def worker_drain(self, name: str) -> bool: ...

    # ------------------------------------------------------------------ workers

    @claims(hello="hello")
    def register(self, hello: WorkerHello) -> MasterInfo: ...

    @claims(worker="worker_id")
    def heartbeat(self, worker_id: str, held: list[str], running: int, *, memory: int = 0,
                  progress: dict[str, Any] | None = None) -> float: ...

    @claims(worker="worker_id")
    def beat(self, worker_id: str, beat: Beat) -> Beaten: ...

    @claims(worker="worker_id")
    def take(self, worker_id: str, hold: int, *, wait: float, received: str | None = None,
             answers: dict[str, bool] | None = None) -> Leased: ...

    @claims(worker="worker_id")
    def report(self, worker_id: str, results: list[ResultMsg], *,
               started: list[str] | None = None, resent: bool = False,
               durable_to: int = 0) -> Receipt: ...

    @claims(worker="worker_id")
    def release(self, worker_id: str, task_ids: list[str], *,
                goodbye: bool = False) -> None: ...

    # ------------------------------------------------------------------ admin

    @shared
    def status(self) -> ClusterStatus: ...

    @shared
    def info(self) -> MasterInfo: ...

    @shared
    def monitor(self) -> dict[str, Any]: ...

    @shared
    def metrics(self) -> dict[str, Any]: ...

    @shared
    def history(self, *, job: str | None = None, failed: bool = False,
                since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    @shared
    def inspect(self, task_id: str) -> dict[str, Any] | None: ...

    @shared
    def explain(self, task_id: str) -> Explanation: ...


CALLS = declared(BrokerAPI)
EXPOSED = tuple(CALLS)


def remote_class(api: type) -> Any:
    """A class whose instances ``cls(call)`` make ``api``'s calls through ``call``."""
    def __init__(self: Any, call: Call) -> None:
        self._call = call

    namespace: dict[str, Any] = {"__slots__": ("_call",), "__init__": __init__,
                                 "__module__": __name__,
                                 "__doc__": f"The master's broker, as {api.__name__} says."}
    namespace.update((c.name, sender(c)) for c in declared(api).values())
    return type("Remote", (), namespace)


Remote: Callable[[Call], BrokerAPI] = remote_class(BrokerAPI)
"""``Remote(call)``: the master's broker, as seen from another process."""
