"""The broker's calls for shared primitives: ``PrimitiveState`` behind the broker's lock.

Mixed into ``taskq.master.broker.Broker``, whose lock, clock and journal they share. A call that
waits (acquire, queue get and put, join, event wait) waits on one condition, for at most
its ``wait`` and never longer than LONG_POLL_S; the caller calls again to wait longer,
which also keeps its place in line. While it waits, leases that run out are expired at
their deadline, so a dead holder's slot goes to the next waiter within its lease. A call
that changed something answers once the change is journaled, committed without the
writer's gathering window (its caller waits, and a lock's users wait on it in turn)::

    client ── prim_acquire(wait) ──► lock ─ PrimitiveState.acquire ─ wait(cond, ≤ LONG_POLL_S)
                                             │ ops                  ▲ notify_all on any change
                                             ▼                      │
                                  Journal.append(Changes(prims)) ── wait(ticket) ── answer
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from taskq.defaults import LONG_POLL_S
from taskq.master.broker_core import BrokerCore
from taskq.master.journal import Journal
from taskq.master.state import Changes
from taskq.master.state.primitives import PrimitiveState
from taskq.protocol.prims import PrimRow

T = TypeVar("T")
_MIN_WAIT_S = 0.001  # a deadline already due is still waited on this long (no spin)


class PrimitiveCalls(BrokerCore):
    """The remote calls on shared primitives; see the module docstring."""

    prims: PrimitiveState
    _prim_cond: threading.Condition

    def _init_primitives(self) -> None:
        self.prims = PrimitiveState()
        self._prim_cond = threading.Condition(self._lock)

    # ------------------------------------------------------------------ plumbing

    def _prim_now(self) -> float:
        """The time, after expiring what ran out by then (lock held)."""
        now = self._clock()
        if self.prims.expire(now):
            self._prim_cond.notify_all()
        return now

    def _prim_commit(self) -> tuple[int, Journal | None]:
        """Queue what changed for the journal and wake waiters (lock held)."""
        ops = self.prims.drain()
        if not ops:
            return 0, None
        self._prim_cond.notify_all()
        if self._journal is None:
            return 0, None
        return self._journal.append(Changes(prims=ops), urgent=True), self._journal

    @staticmethod
    def _durable(job: tuple[int, Journal | None]) -> None:
        ticket, journal = job
        if ticket and journal is not None:
            journal.wait(ticket)

    def _prim_wait(self, ready: Callable[[], T], wait: float) -> T:
        """Wait (lock held) until ready() is truthy or the bounded wait runs out, expiring
        leases as their deadlines pass."""
        value = ready()
        if value or wait <= 0:
            return value
        end = time.monotonic() + min(wait, LONG_POLL_S)
        while not value and not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            due = self.prims.due()
            if due is not None:
                left = min(left, max(due - self._clock(), _MIN_WAIT_S))
            self._prim_cond.wait(left)
            self._prim_now()
            value = ready()
        return value

    def _changed(self, fn: Callable[[], T]) -> T:
        """Run a change under the lock, then answer once it is journaled."""
        with self._lock:
            self._prim_now()
            out = fn()
            job = self._prim_commit()
        self._durable(job)
        return out

    # ------------------------------------------------------------------ locks, semaphores

    def prim_open(self, kind: str, name: str, param: int) -> int:
        """Make the primitive if it is new; returns its parameter (semaphore value, queue
        maxsize), which a caller compares with the one it asked for."""
        return self._changed(lambda: self.prims.get(kind, name, param).param)

    def prim_acquire(self, kind: str, name: str, capacity: int, token: str, *,
                     session: str, lease: float, wait: float) -> bool:
        """Hold a slot for ``token`` or keep its place in line, waiting a bounded time."""
        prims = self.prims
        with self._lock:
            now = self._prim_now()
            held = prims.acquire(kind, name, capacity, token, session, lease, now)
            place: tuple[int, Journal | None] = (0, None)
            if not held:
                place = self._prim_commit()  # a new place in line is journaled before the wait
                self._prim_wait(lambda: prims.is_free(kind, name, token), wait)
                held = prims.acquire(kind, name, capacity, token, session, lease, self._clock())
            job = self._prim_commit()
        self._durable(job if job[0] else place)
        return held

    def prim_release(self, kind: str, name: str, token: str) -> str:
        """Give back a slot ("held") or a place in line ("waiting"); "" if ``token`` has
        neither (never acquired, released already, or lost when its lease ran out)."""
        return self._changed(lambda: self.prims.release(kind, name, token, self._clock()))

    def prim_renew(self, session: str, tokens: list[str]) -> list[str]:
        """Extend the leases of what ``session`` holds; returns the tokens it lost."""
        with self._lock:
            lost = self.prims.renew(session, tokens, self._prim_now())
            self._prim_commit()  # what expired
            return lost

    # ------------------------------------------------------------------ dicts, counters

    def dict_get(self, name: str, key: str) -> bytes | None:
        with self._lock:
            return self.prims.dict_get(name, key)

    def dict_set(self, name: str, key: str, value: bytes) -> None:
        self._changed(lambda: self.prims.dict_set(name, key, value))

    def dict_pop(self, name: str, key: str) -> bytes | None:
        return self._changed(lambda: self.prims.dict_pop(name, key))

    def dict_setdefault(self, name: str, key: str, value: bytes) -> bytes:
        return self._changed(lambda: self.prims.dict_setdefault(name, key, value))

    def dict_cas(self, name: str, key: str, expected: bytes, value: bytes) -> bool:
        return self._changed(lambda: self.prims.dict_cas(name, key, expected, value))

    def dict_keys(self, name: str) -> list[str]:
        with self._lock:
            return self.prims.dict_keys(name)

    def counter_add(self, name: str, n: int) -> int:
        return self._changed(lambda: self.prims.counter_add(name, n))

    # ------------------------------------------------------------------ events

    def event_set(self, name: str, *, flag: bool) -> None:
        self._changed(lambda: self.prims.event_set(name, flag))

    def event_wait(self, name: str, *, wait: float) -> bool:
        with self._lock:
            return self._prim_wait(lambda: self.prims.event_is_set(name), wait)

    # ------------------------------------------------------------------ queues

    def queue_put(self, name: str, maxsize: int, item_id: str, body: bytes, *,
                  wait: float) -> bool:
        """Append an item, waiting a bounded time for room; False if there was none."""
        prims = self.prims
        with self._lock:
            self._prim_now()
            prims.get("queue", name, maxsize)
            self._prim_wait(lambda: prims.queue_has_room(name, maxsize), wait)
            done = prims.queue_put(name, maxsize, item_id, body)
            job = self._prim_commit()
        self._durable(job)
        return done

    def queue_get(self, name: str, token: str, *, session: str, lease: float,
                  wait: float) -> tuple[str, bytes] | None:
        """Take the first ready item into flight with ``token`` (leased like a lock),
        waiting a bounded time; None if there was none."""
        prims = self.prims
        with self._lock:
            self._prim_now()
            self._prim_wait(lambda: prims.queue_ready(name) > 0, wait)
            got = prims.queue_get(name, token, session, lease, self._clock())
            job = self._prim_commit()
        self._durable(job)
        return got

    def queue_done(self, name: str, item_id: str, token: str, *, requeue: bool) -> bool:
        """Acknowledge an item in flight with ``token``, or with ``requeue`` hand it back;
        False if its lease ran out (it is back in the queue, or with another consumer)."""
        return self._changed(lambda: self.prims.queue_done(name, item_id, token, requeue))

    def queue_size(self, name: str) -> tuple[int, int]:
        """(items ready, items not yet acknowledged)."""
        with self._lock:
            self._prim_now()
            return self.prims.queue_ready(name), self.prims.queue_unfinished(name)

    def queue_join(self, name: str, *, wait: float) -> bool:
        """Wait a bounded time until every item put was acknowledged."""
        with self._lock:
            self._prim_now()
            return self._prim_wait(lambda: self.prims.queue_unfinished(name) == 0, wait)

    # ------------------------------------------------------------------ admin

    def primitives(self) -> list[PrimRow]:
        with self._lock:
            self._prim_now()
            self._prim_commit()  # what expired
            return self.prims.rows()

    def delete_primitive(self, name: str, *, kind: str | None = None) -> list[str]:
        """Delete the primitives called ``name`` (of one kind or all); returns the kinds."""
        return self._changed(lambda: self.prims.delete(name, kind))
