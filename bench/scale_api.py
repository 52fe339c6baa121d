"""The broker calls the scale benchmark makes, in one place.

The simulated workers (``bench.scale_sim``) and the scale benchmark (``bench.scale``) call
the master only through this module, never through ``taskq.protocol.api.Remote`` directly,
so a change to how ``Remote`` is called (its signatures, keyword-only flags) is made here
once::

    scale_sim / scale ── scale_api.WorkerCalls.take(...) ── Remote.take ── Link ══► master
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskq.net.link import Link
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import Beat, ResultMsg, TaskMsg, WorkerHello
from taskq.protocol.replies import ClusterStatus, MasterInfo, Polled


class WorkerCalls:
    """The calls a worker makes, as ``taskq.worker.worker.Worker`` makes them."""

    __slots__ = ("_remote",)

    def __init__(self, remote: BrokerAPI) -> None:
        self._remote = remote

    def register(self, hello: WorkerHello) -> MasterInfo:
        return self._remote.register(hello)

    def heartbeat(self, worker_id: str, held: list[str], running: int) -> float:
        return self._remote.heartbeat(worker_id, held, running)

    def take(self, worker_id: str, n: int, wait: float) -> list[TaskMsg]:
        return self._remote.take(worker_id, n, wait=wait)

    def report(self, worker_id: str, results: list[ResultMsg], started: list[str]) -> None:
        self._remote.report(worker_id, results, started=started)

    def control(self, worker_id: str, answers: dict[str, bool], wait: float) -> Polled:
        return self._remote.control(worker_id, answers, wait=wait)

    def beat(self, worker_id: str, beat: Beat) -> Polled:
        return self._remote.control(worker_id, {}, wait=0.0, beat=beat)

    def release(self, worker_id: str, task_ids: list[str], goodbye: bool) -> None:
        self._remote.release(worker_id, task_ids, goodbye=goodbye)

    def status(self) -> ClusterStatus:
        return self._remote.status()


def link(address: tuple[str, int], authkey: bytes, reconnect_for: float,
         on_connect: Callable[[WorkerCalls], None] | None = None) -> Link:
    """A reconnecting link to the master; ``on_connect`` runs on every (re)connection."""
    def joined(remote: BrokerAPI) -> None:
        if on_connect is not None:
            on_connect(WorkerCalls(remote))

    return Link(address, authkey, reconnect_for=reconnect_for,
                on_connect=joined if on_connect is not None else None)


def calls(one: Link) -> WorkerCalls:
    """The worker calls over ``one`` (each reconnects through the link when it breaks)."""
    return WorkerCalls(one.remote)


def status_of(one: Link) -> Any:
    """The master's ``ClusterStatus`` (what ``taskq status --json`` prints)."""
    return calls(one).status()
