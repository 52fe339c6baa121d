"""The broker as peers reach it: every claim turned into its public name, every task id and
report checked against its owner (``taskq.protocol.names`` says what a claim and a public
name are)::

    peer ── call(claim, …) ──► Owned ── outbox_name / worker_name ──► Broker (public names)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskq import logs
from taskq.protocol.messages import MIRROR_FN, ResultMsg, TaskMsg, WorkerHello
from taskq.protocol.names import NotYours, checked_claim, outbox_name, worker_name
from taskq.protocol.replies import CancelOutcome, ClusterStatus, Fetched, MasterInfo

if TYPE_CHECKING:
    from taskq.master.broker import Broker

log = logs.get_logger(__name__)


class Owned:
    """The broker as peers reach it: each claim turned into its public name, each task id
    and report checked against its owner. Mirrors ``taskq.protocol.api.Remote``."""

    def __init__(self, broker: Broker,
                 keys_in_use: Callable[[], dict[str, int]] | None = None) -> None:
        self._broker = broker
        self._keys_in_use = keys_in_use

    def _box(self, claim: Any) -> str:
        return outbox_name(checked_claim(claim, "an outbox"))

    def _worker(self, claim: Any) -> str:
        return worker_name(checked_claim(claim, "a worker id"))

    # ------------------------------------------------------------------ submitters

    def hello(self, outbox: str, ended: list[str] | None = None) -> MasterInfo:
        box = self._box(outbox)
        return self._broker.hello(box, _own_ids(box, ended or []))

    def submit(self, tasks: list[TaskMsg], durable: bool = True) -> int:
        for msg in tasks:
            if type(msg) is not TaskMsg:
                raise NotYours(f"submit takes task messages, not {type(msg).__name__}")
            box = self._box(msg.outbox)
            if type(msg.task_id) is not str or not msg.task_id.startswith(box + "-"):
                log.warning("task_refused", outbox=box, reason="task id outside its outbox")
                raise NotYours(f"task id {str(msg.task_id)[:80]!r} does not belong to its "
                               f"outbox (task ids start with the outbox's public name)")
            msg.outbox = box
            _check_deps(msg)
        return self._broker.submit(tasks, durable)

    def fetch(self, outbox: str, ack: list[str], max_n: int, wait: float) -> Fetched:
        return self._broker.fetch(self._box(outbox), ack, max_n, wait)

    def open_count(self, outbox: str) -> int | None:
        return self._broker.open_count(self._box(outbox))

    def known(self, task_ids: list[str]) -> list[str]:
        if type(task_ids) is not list:
            raise NotYours("task ids must be a list of strings")
        return self._broker.known([t for t in task_ids if type(t) is str])

    def cancel(self, task_ids: list[str], wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome:
        box = self._box(outbox)
        mine = _own_ids(box, task_ids)
        out = self._broker.cancel(mine, wait, box, running is True)
        kept = set(mine)
        out.unknown.extend(t for t in task_ids if t not in kept)
        return out

    # ------------------------------------------------------------------ workers

    def register(self, hello: WorkerHello) -> MasterInfo:
        if type(hello) is not WorkerHello:
            raise NotYours(f"register takes a WorkerHello, not {type(hello).__name__}")
        hello.worker_id = self._worker(hello.worker_id)
        return self._broker.register(hello)

    def heartbeat(self, worker_id: str, held: list[str], running: int,
                  memory: int = 0, progress: dict[str, Any] | None = None) -> bool:
        return self._broker.heartbeat(self._worker(worker_id), held, running, memory,
                                      progress)

    def take(self, worker_id: str, n: int, wait: float) -> list[TaskMsg]:
        return self._broker.take(self._worker(worker_id), n, wait)

    def report(self, worker_id: str, results: list[ResultMsg],
               started: list[str] | None = None) -> None:
        self._broker.report(self._worker(worker_id), results, started)

    def release(self, worker_id: str, task_ids: list[str], goodbye: bool = False) -> None:
        self._broker.release(self._worker(worker_id), task_ids, goodbye)

    def control(self, worker_id: str, answers: dict[str, bool], wait: float) -> list[str]:
        return self._broker.control(self._worker(worker_id), answers, wait)

    # ------------------------------------------------------------------ admin

    def __getattr__(self, name: str) -> Any:
        """Calls on what peers share by name (schedules, queues, primitives) pass through.
        Their arguments are still loaded by ``taskq.protocol.restricted``."""
        return getattr(self._broker, name)

    def status(self) -> ClusterStatus:
        status = self._broker.status()
        if self._keys_in_use is not None:
            status.keys = self._keys_in_use()
        return status

    def info(self) -> MasterInfo:
        return self._broker.info()


def _own_ids(box: str, task_ids: Any) -> list[str]:
    """The task ids among ``task_ids`` that live under outbox ``box``."""
    if type(task_ids) is not list:
        raise NotYours("task ids must be a list of strings")
    prefix = box + "-"
    return [t for t in task_ids if type(t) is str and t.startswith(prefix)]


def _check_deps(msg: TaskMsg) -> None:
    """A task's dependencies are a tuple of task ids (one for a mirror); inputs are the
    master's to attach, never a submitter's."""
    deps = msg.deps
    if type(deps) is not tuple or not all(type(d) is str for d in deps):
        raise NotYours("a task's dependencies must be a tuple of task ids")
    if msg.fn == MIRROR_FN and len(deps) != 1:
        raise NotYours("a task with no function mirrors exactly one dependency")
    msg.inputs = ()
