"""The factories of shared primitives (``client.lock(...)`` and the rest), which every
``Client`` has (``taskq.current_client()`` in a task gives one: ``taskq.client.current``)."""

from __future__ import annotations

from taskq.client.prims import Counter, Event, Lock, Queue, Semaphore, SharedDict
from taskq.client.session import Session
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
