"""Shared primitives from a client's side: ``Lock``, ``Semaphore``, ``SharedDict``,
``Counter``, ``Queue`` and ``Event``, each a handle on state the master hosts and journals.

    client.lock("db") ── acquire ── prim_acquire(token, wait ≤ LONG_POLL_S) ──► master
         │   (re-issued until held or timed out; the place in line is kept between calls)
         ▼ held: token joins the leases its taskq.client.session.Session renews

Values (dict values, queue items) are pickled here and stay opaque bytes on the master.
A name is a non-empty str of at most ``MAX_NAME`` characters; names are per kind.
"""

from __future__ import annotations

import queue as stdlib_queue
import time
import uuid
from collections import deque
from collections.abc import Iterator, MutableMapping
from types import TracebackType
from typing import Any

from taskq import defaults, logs
from taskq.client.session import Session
from taskq.protocol import bodies
from taskq.protocol.prims import check_name

log = logs.get_logger(__name__)

_MISSING: Any = object()


def _deadline(blocking: bool, timeout: float | None) -> float | None:
    """When a wait gives up: now for non-blocking, None for forever."""
    if not blocking:
        return time.monotonic()
    if timeout is None or timeout < 0:
        return None
    return time.monotonic() + timeout


def _slice(deadline: float | None) -> float:
    """How long the next bounded wait on the master may be."""
    if deadline is None:
        return defaults.LONG_POLL_S
    return max(0.0, min(defaults.LONG_POLL_S, deadline - time.monotonic()))


def _check_lease(lease: float) -> float:
    if not isinstance(lease, int | float) or not lease > 0:
        raise ValueError(f"bad lease {lease!r}: expected seconds above 0")
    return float(lease)


class Semaphore:
    """At most ``value`` holders at once across the cluster; waiters served in order."""

    kind = "semaphore"

    def __init__(self, session: Session, name: str, value: int = 1, lease: float = 30.0) -> None:
        self.name = check_name(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"bad {self.kind} value {value!r}: expected an int >= 1")
        self.value = value
        self.lease = _check_lease(lease)
        self._session = session
        self._held: list[str] = []
        if self.kind == "semaphore":
            existing = session.remote.prim_open(self.kind, self.name, value)
            if existing != value:
                raise ValueError(f"semaphore {name!r} exists with value {existing}, not {value}")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot; False if none came before ``timeout`` (None: wait for ever)."""
        remote, session = self._session.remote, self._session
        token = uuid.uuid4().hex
        deadline = _deadline(blocking, timeout)
        try:
            while True:
                if remote.prim_acquire(self.kind, self.name, self.value, token,
                                       session=session.session_id, lease=self.lease,
                                       wait=_slice(deadline)):
                    session.hold(token, self.lease)
                    self._held.append(token)
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except BaseException:
            self._give_up(token)
            raise
        self._give_up(token)
        return False

    def _give_up(self, token: str) -> None:
        """Leave the line (or the slot granted at the last moment)."""
        try:
            self._session.remote.prim_release(self.kind, self.name, token)
        except Exception as exc:  # the place runs out by itself
            log.warning("give_up_failed", name=self.name, error=type(exc).__name__)

    def release(self) -> None:
        """Give back a slot this handle holds; RuntimeError if it holds none."""
        if not self._held:
            raise RuntimeError(f"release of {self.kind} {self.name!r}, which this handle "
                               f"does not hold")
        token = self._held.pop(0)
        alive = self._session.drop(token)
        gone = self._session.remote.prim_release(self.kind, self.name, token) != "held"
        if gone or not alive:
            raise RuntimeError(f"{self.kind} {self.name!r} was lost before release: its "
                               f"lease of {self.lease:g} s ran out (or it was deleted)")

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lock(Semaphore):
    """A cluster-wide lock held by a lease its holder's process renews while it lives."""

    kind = "lock"

    def __init__(self, session: Session, name: str, lease: float = 30.0) -> None:
        super().__init__(session, name, 1, lease)

    def locked_here(self) -> bool:
        return bool(self._held)


class SharedDict(MutableMapping[str, Any]):
    """A dict of str keys to picklable values, kept on the master."""

    def __init__(self, session: Session, name: str) -> None:
        self.name = check_name(name)
        self._remote = session.remote

    def _encode(self, key: str, value: Any) -> bytes:
        check_name(key, "key")
        return bodies.encode_shared(value, f"dict {self.name!r} key {key!r}")

    def __getitem__(self, key: str) -> Any:
        body = self._remote.dict_get(self.name, check_name(key, "key"))
        if body is None:
            raise KeyError(key)
        return bodies.decode_shared(body)

    def __setitem__(self, key: str, value: Any) -> None:
        self._remote.dict_set(self.name, key, self._encode(key, value))

    def __delitem__(self, key: str) -> None:
        if self._remote.dict_pop(self.name, check_name(key, "key")) is None:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._remote.dict_keys(self.name))

    def __len__(self) -> int:
        return len(self._remote.dict_keys(self.name))

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Atomic: the value of ``key``, set to ``default`` first if it had none."""
        return bodies.decode_shared(
            self._remote.dict_setdefault(self.name, key, self._encode(key, default)))

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Atomic: remove ``key`` and return its value."""
        body = self._remote.dict_pop(self.name, check_name(key, "key"))
        if body is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return bodies.decode_shared(body)

    def cas(self, key: str, old: Any, new: Any) -> bool:
        """Atomic compare-and-set: set ``key`` to ``new`` if its value == ``old``; False if
        it differs or ``key`` is missing."""
        encoded = self._encode(key, new)
        while True:
            body = self._remote.dict_get(self.name, key)
            if body is None or bodies.decode_shared(body) != old:
                return False
            if self._remote.dict_cas(self.name, key, body, encoded):
                return True  # else it changed in between: compare again


class Counter:
    """An integer on the master with atomic ``add``."""

    def __init__(self, session: Session, name: str) -> None:
        self.name = check_name(name)
        self._remote = session.remote

    def add(self, n: int = 1) -> int:
        """Add ``n`` and return the new value."""
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"counter {self.name!r}: add() takes an int, not {n!r}")
        return self._remote.counter_add(self.name, n)

    @property
    def value(self) -> int:
        return self._remote.counter_add(self.name, 0)


class Event:
    """A flag on the master that tasks and clients can wait for."""

    def __init__(self, session: Session, name: str) -> None:
        self.name = check_name(name)
        self._remote = session.remote

    def set(self) -> None:
        self._remote.event_set(self.name, flag=True)

    def clear(self) -> None:
        self._remote.event_set(self.name, flag=False)

    def is_set(self) -> bool:
        return self._remote.event_wait(self.name, wait=0.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set (True) or ``timeout`` passes (False)."""
        deadline = _deadline(True, timeout)
        while True:
            if self._remote.event_wait(self.name, wait=_slice(deadline)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


class QueueItem:
    """An item taken from a ``Queue``: ``value``, and ``done()`` to acknowledge it. As a
    context manager it gives the value and acknowledges it when the block ends (or, if the
    block raises, hands it back to the queue)."""

    def __init__(self, queue: Queue, item_id: str, token: str, value: Any) -> None:
        self.queue = queue
        self.item_id = item_id
        self.token = token
        self.value = value
        self.finished = False

    def done(self, requeue: bool = False) -> bool:
        """Acknowledge the item (or hand it back); False if its lease had run out, so it
        went back to the queue and may be processed again."""
        return self.queue._finish(self, requeue)

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.finished:
            self.done(requeue=kind is not None)

    def __repr__(self) -> str:
        return f"QueueItem({self.value!r})"


class Queue:
    """A FIFO on the master; an item taken and not acknowledged before its consumer's lease
    runs out goes back to the queue, in its place."""

    def __init__(self, session: Session, name: str, maxsize: int = 0,
                 lease: float = 30.0) -> None:
        self.name = check_name(name)
        if not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"bad maxsize {maxsize!r}: expected an int >= 0 (0: unbounded)")
        self.maxsize = maxsize
        self.lease = _check_lease(lease)
        self._session = session
        self._taken: deque[QueueItem] = deque()
        existing = session.remote.prim_open("queue", self.name, maxsize)
        if existing != maxsize:
            raise ValueError(f"queue {name!r} exists with maxsize {existing}, not {maxsize}")

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Append ``item``; ``queue.Full`` if no room came before ``timeout``."""
        body = bodies.encode_shared(item, f"queue {self.name!r} item")
        item_id, deadline = uuid.uuid4().hex, _deadline(block, timeout)
        remote = self._session.remote
        while not remote.queue_put(self.name, self.maxsize, item_id, body,
                                    wait=_slice(deadline)):
            if deadline is not None and time.monotonic() >= deadline:
                raise stdlib_queue.Full(f"queue {self.name!r} is full (maxsize "
                                        f"{self.maxsize}) after {timeout or 0:g} s")

    def get(self, block: bool = True, timeout: float | None = None) -> QueueItem:
        """Take the first item; ``queue.Empty`` if none came before ``timeout``."""
        session = self._session
        token, deadline = uuid.uuid4().hex, _deadline(block, timeout)
        while True:
            got = session.remote.queue_get(self.name, token, session=session.session_id,
                                           lease=self.lease, wait=_slice(deadline))
            if got is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise stdlib_queue.Empty(f"queue {self.name!r} is empty")
        session.hold(token, self.lease)
        item = QueueItem(self, got[0], token, bodies.decode_shared(got[1]))
        self._taken.append(item)
        return item

    def _finish(self, item: QueueItem, requeue: bool) -> bool:
        if item.finished:
            raise ValueError(f"queue {self.name!r}: item {item.value!r} was already done")
        item.finished = True
        if item in self._taken:
            self._taken.remove(item)
        self._session.drop(item.token)
        if self._session.remote.queue_done(self.name, item.item_id, item.token,
                                            requeue=requeue):
            return True
        log.warning("queue_item_lease_lost", queue=self.name, item_id=item.item_id)
        return False

    def task_done(self) -> bool:
        """Acknowledge the oldest item this handle took and did not acknowledge (False if
        its lease had run out: see ``QueueItem.done``)."""
        if not self._taken:
            raise ValueError(f"queue {self.name!r}: task_done() called more times than get()")
        return self._taken[0].done()

    def qsize(self) -> int:
        """Items waiting to be taken (not those in flight)."""
        return self._session.remote.queue_size(self.name)[0]

    def unfinished(self) -> int:
        """Items put and not yet acknowledged (waiting or in flight)."""
        return self._session.remote.queue_size(self.name)[1]

    def empty(self) -> bool:
        return self.qsize() == 0

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put was acknowledged; False if ``timeout`` passed first."""
        deadline = _deadline(True, timeout)
        while not self._session.remote.queue_join(self.name, wait=_slice(deadline)):
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

