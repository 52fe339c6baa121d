"""The factories of shared primitives (``client.lock(...)`` and the rest), and
``current_client()``, which gives a task a client of the master its worker serves."""

from __future__ import annotations

import os
import threading

from taskq import defaults
from taskq.client.prims import Counter, Event, Lock, Queue, Semaphore, SharedDict
from taskq.client.session import Session
from taskq.net.connection import parse_address
from taskq.net.link import Link
from taskq.protocol.api import BrokerAPI
from taskq.protocol.prims import PrimRow, check_name


class SharedState:
    """The factories of shared primitives; ``Client`` and ``current_client()`` have them."""

    _remote: BrokerAPI
    _shared_session: Session | None = None

    def _session(self) -> Session:
        if self._shared_session is None:
            self._shared_session = Session(self._remote)
        return self._shared_session

    def lock(self, name: str, lease: float = 30.0) -> Lock:
        """A cluster-wide lock; a holder that dies loses it ``lease`` s later."""
        return Lock(self._session(), name, lease)

    def semaphore(self, name: str, value: int = 1, lease: float = 30.0) -> Semaphore:
        """A cluster-wide semaphore of ``value`` slots."""
        return Semaphore(self._session(), name, value, lease)

    def dict(self, name: str) -> SharedDict:
        return SharedDict(self._session(), name)

    def counter(self, name: str) -> Counter:
        return Counter(self._session(), name)

    def queue(self, name: str, maxsize: int = 0, lease: float = 30.0) -> Queue:
        """A FIFO of picklable items; one taken and never acknowledged comes back
        ``lease`` s after its consumer died."""
        return Queue(self._session(), name, maxsize, lease)

    def event(self, name: str) -> Event:
        return Event(self._session(), name)

    def delete_primitive(self, name: str, kind: str | None = None) -> list[str]:
        """Delete the primitives called ``name`` (of ``kind``, or of every kind); returns
        the kinds deleted."""
        return self._remote.delete_primitive(check_name(name), kind=kind)

    def primitives(self) -> list[PrimRow]:
        return self._remote.primitives()


class TaskClient(SharedState):
    """What ``taskq.current_client()`` gives a task: the shared primitives, over a
    connection of its own to the master its worker serves."""

    def __init__(self, address: tuple[str, int], authkey: bytes) -> None:
        self._link = Link(address, authkey)
        self._link.open(defaults.CONNECT_TIMEOUT_S * 2)
        self._remote = self._link.remote

    def close(self) -> None:
        self._link.close()


_current: tuple[int, TaskClient] | None = None
_current_lock = threading.Lock()


def current_client() -> TaskClient:
    """Inside a task: a client of the master that runs it (one per pool process). The
    worker hands the address and key to its pool processes in the environment."""
    global _current
    with _current_lock:
        if _current is None or _current[0] != os.getpid():
            address = os.environ.get(defaults.ENV_TASK_MASTER)
            key = os.environ.get(defaults.ENV_TASK_AUTHKEY)
            if not address or not key:
                raise RuntimeError("taskq.current_client() works only inside a task that a "
                                   "taskq worker runs")
            authkey = key.encode("utf-8", "surrogateescape")
            _current = (os.getpid(), TaskClient(parse_address(address), authkey))
        return _current[1]

