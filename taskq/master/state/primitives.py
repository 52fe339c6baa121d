"""Shared primitives hosted by the master: locks, semaphores, dicts, counters, queues, events.

A plain object like ``BrokerState``: no sockets, no threads, no clock (every call that needs
time takes ``now``), no unpickling (values and queue items are opaque bytes). The service
wraps it in the broker's lock, turns bounded waits into long-polls and journals ``ops``.

    acquire(token) ── free slot? ──► holders[token] (deadline = now + lease, renewed by
         │ no                              ▲          the holder's session) ── release
         ▼                                 │ grant, first come first served
    waiters (FIFO, a place kept for WAIT_GRACE_S after each poll) ── expire(now) drops
                                                       holders and waiters past deadline
    put(item) ──► ready (by seq) ── get(token) ──► in flight (leased like a holder) ── ack
                     ▲                                  │ expired or handed back
                     └──────────────────────────────────┘ (back in its original place)

Names are per kind: a lock and a dict may share a name. Every change is appended to
``ops`` (upserts and deletes of rows), which the journal applies in order; ``restore_*``
rebuild the state from those rows after a restart, with deadlines counted from then.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from taskq.protocol.prims import KINDS, PrimRow

WAIT_GRACE_S = 10.0  # a waiter that stops polling loses its place after this long

Op = tuple[Any, ...]  # (table, "put" | "del", *row): see taskq.master.journal.prims


@dataclass(slots=True)
class Hold:
    """A holder of a lock or semaphore slot, a waiter for one, or a consumer of an item."""

    token: str
    session: str
    lease: float
    deadline: float
    seq: int = 0  # place in line (waiters) or order of arrival (holders)


@dataclass(slots=True)
class Item:
    item_id: str
    seq: int
    body: bytes
    taker: Hold | None = None  # in flight with this consumer, else ready


@dataclass(slots=True)
class Prim:
    kind: str
    name: str
    param: int = 0  # semaphore: how many may hold it; queue: maxsize (0: unbounded)
    number: int = 0  # counter: its value; event: 1 when set
    holders: dict[str, Hold] = field(default_factory=dict)
    waiters: OrderedDict[str, Hold] = field(default_factory=OrderedDict)
    values: dict[str, bytes] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    ready: list[tuple[int, str]] = field(default_factory=list)  # heap of (seq, item_id)

    def size(self) -> int:
        if self.kind == "dict":
            return len(self.values)
        if self.kind == "queue":
            return len(self.items)
        return self.number if self.kind in ("counter", "event") else len(self.holders)


class PrimitiveState:
    """Every primitive by (kind, name); see the module docstring."""

    def __init__(self) -> None:
        self.prims: dict[tuple[str, str], Prim] = {}
        self.ops: list[Op] = []
        self._seq = 0
        self._due = float("inf")  # no deadline is earlier (lowered as deadlines are set)

    # ------------------------------------------------------------------ bookkeeping

    def _lease(self, hold: Hold, deadline: float) -> None:
        hold.deadline = deadline
        self._due = min(self._due, deadline)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def get(self, kind: str, name: str, param: int = 0) -> Prim:
        """The primitive, made (and journaled) on first use with ``param``."""
        prim = self.prims.get((kind, name))
        if prim is None:
            prim = self.prims[(kind, name)] = Prim(kind, name, param)
            self._put_prim(prim)
        return prim

    def _put_prim(self, prim: Prim) -> None:
        self.ops.append(("prim", "put", prim.kind, prim.name, prim.param, prim.number))

    def _put_hold(self, prim: Prim, hold: Hold, waiting: bool) -> None:
        self.ops.append(("hold", "put", prim.kind, prim.name, hold.token, hold.session,
                         hold.lease, hold.seq, int(waiting)))

    def _del_hold(self, prim: Prim, token: str) -> None:
        self.ops.append(("hold", "del", prim.kind, prim.name, token))

    def _put_item(self, prim: Prim, item: Item) -> None:
        t = item.taker
        self.ops.append(("item", "put", prim.name, item.item_id, item.seq, item.body,
                         t.token if t else None, t.session if t else None,
                         t.lease if t else 0.0))

    def drain(self) -> list[Op]:
        ops, self.ops = self.ops, []
        return ops

    def delete(self, name: str, kind: str | None = None) -> list[str]:
        """Forget the primitives called ``name`` (of ``kind``, or of every kind)."""
        gone = [k for k in KINDS if (kind is None or k == kind) and (k, name) in self.prims]
        for k in gone:
            del self.prims[(k, name)]
            self.ops.append(("prim", "del", k, name))
        return gone

    # ------------------------------------------------------------------ leases

    def expire(self, now: float) -> int:
        """Drop holders, waiters and consumers whose deadline passed; returns how many."""
        if now < self._due:
            return 0
        dropped = 0
        for prim in self.prims.values():
            for place in (prim.holders, prim.waiters):
                for token in [t for t, h in place.items() if h.deadline <= now]:
                    del place[token]
                    self._del_hold(prim, token)
                    dropped += 1
            for item in [i for i in prim.items.values() if i.taker and i.taker.deadline <= now]:
                self._requeue(prim, item)
                dropped += 1
            if prim.kind in ("lock", "semaphore"):
                self._grant(prim, now)
        earliest = self.next_deadline()
        self._due = float("inf") if earliest is None else earliest
        return dropped

    def due(self) -> float | None:
        """No deadline comes before this (None: there are none); renewals only push
        deadlines later, so it may be early, never late."""
        return None if self._due == float("inf") else self._due

    def next_deadline(self) -> float | None:
        """The earliest deadline of any holder, waiter or item in flight (a full scan)."""
        found = [h.deadline for p in self.prims.values()
                 for place in (p.holders, p.waiters) for h in place.values()]
        found += [i.taker.deadline for p in self.prims.values() for i in p.items.values()
                  if i.taker is not None]
        return min(found, default=None)

    def renew(self, session: str, tokens: list[str], now: float) -> list[str]:
        """Extend the leases of ``tokens`` held by ``session``; returns those it lost."""
        wanted, seen = set(tokens), set()
        for prim in self.prims.values():
            places = [(prim.holders.values(), None), (prim.waiters.values(), WAIT_GRACE_S),
                      ((i.taker for i in prim.items.values() if i.taker), None)]
            for holds, grace in places:
                for hold in holds:
                    if hold.token in wanted and hold.session == session:
                        self._lease(hold, now + (hold.lease if grace is None else grace))
                        seen.add(hold.token)
        return [t for t in tokens if t not in seen]

    # ------------------------------------------------------------------ locks, semaphores

    def acquire(self, kind: str, name: str, capacity: int, token: str, session: str,
                lease: float, now: float) -> bool:
        """Hold a slot, or keep (or take) a place in line; True once ``token`` holds one."""
        prim = self.get(kind, name, capacity)
        if token in prim.holders:
            return True
        waiter = prim.waiters.get(token)
        if waiter is None:
            waiter = prim.waiters[token] = Hold(token, session, lease, 0.0, self._next())
            self._put_hold(prim, waiter, waiting=True)
        self._lease(waiter, now + WAIT_GRACE_S)
        self._grant(prim, now)
        return token in prim.holders

    def _grant(self, prim: Prim, now: float) -> None:
        """Give free slots to the first waiters in line."""
        while prim.waiters and len(prim.holders) < max(prim.param, 1):
            token, hold = prim.waiters.popitem(last=False)
            self._lease(hold, now + hold.lease)
            prim.holders[token] = hold
            self._put_hold(prim, hold, waiting=False)

    def release(self, kind: str, name: str, token: str, now: float) -> str:
        """Give back a slot ("held") or a place in line ("waiting"); "" if neither."""
        prim = self.prims.get((kind, name))
        if prim is None:
            return ""
        for place, what in ((prim.holders, "held"), (prim.waiters, "waiting")):
            if place.pop(token, None) is not None:
                self._del_hold(prim, token)
                self._grant(prim, now)
                return what
        return ""

    def is_free(self, kind: str, name: str, token: str) -> bool:
        prim = self.prims.get((kind, name))
        return prim is None or token in prim.holders or token not in prim.waiters

    # ------------------------------------------------------------------ dicts, counters

    def dict_get(self, name: str, key: str) -> bytes | None:
        prim = self.prims.get(("dict", name))
        return None if prim is None else prim.values.get(key)

    def dict_set(self, name: str, key: str, value: bytes) -> None:
        self.get("dict", name).values[key] = value
        self.ops.append(("value", "put", name, key, value))

    def dict_pop(self, name: str, key: str) -> bytes | None:
        prim = self.prims.get(("dict", name))
        value = None if prim is None else prim.values.pop(key, None)
        if value is not None:
            self.ops.append(("value", "del", name, key))
        return value

    def dict_setdefault(self, name: str, key: str, value: bytes) -> bytes:
        prim = self.get("dict", name)
        if key not in prim.values:
            self.dict_set(name, key, value)
        return prim.values[key]

    def dict_cas(self, name: str, key: str, expected: bytes, value: bytes) -> bool:
        """Set ``key`` to ``value`` if it holds exactly ``expected`` now."""
        if self.dict_get(name, key) != expected:
            return False
        self.dict_set(name, key, value)
        return True

    def dict_keys(self, name: str) -> list[str]:
        prim = self.prims.get(("dict", name))
        return [] if prim is None else list(prim.values)

    def counter_add(self, name: str, n: int) -> int:
        prim = self.get("counter", name)
        prim.number += n
        self._put_prim(prim)
        return prim.number

    # ------------------------------------------------------------------ events

    def event_set(self, name: str, flag: bool) -> None:
        prim = self.get("event", name)
        if prim.number != int(flag):
            prim.number = int(flag)
            self._put_prim(prim)

    def event_is_set(self, name: str) -> bool:
        prim = self.prims.get(("event", name))
        return prim is not None and prim.number == 1

    # ------------------------------------------------------------------ queues

    def queue_has_room(self, name: str, maxsize: int) -> bool:
        prim = self.prims.get(("queue", name))
        return prim is None or not prim.param or len(prim.items) < prim.param

    def queue_put(self, name: str, maxsize: int, item_id: str, body: bytes) -> bool:
        """Append an item if there is room; True if it is in (also if it already was)."""
        prim = self.get("queue", name, maxsize)
        if item_id in prim.items:
            return True
        if prim.param and len(prim.items) >= prim.param:
            return False
        item = prim.items[item_id] = Item(item_id, self._next(), body)
        heapq.heappush(prim.ready, (item.seq, item_id))
        self._put_item(prim, item)
        return True

    def queue_ready(self, name: str) -> int:
        prim = self.prims.get(("queue", name))
        return 0 if prim is None else len(prim.ready)

    def queue_get(self, name: str, token: str, session: str, lease: float,
                  now: float) -> tuple[str, bytes] | None:
        """Take the first ready item into flight with this consumer; None when empty."""
        prim = self.prims.get(("queue", name))
        if prim is None:
            return None
        for item in prim.items.values():  # a retried get after a lost reply: the same item
            if item.taker is not None and item.taker.token == token:
                return item.item_id, item.body
        if not prim.ready:
            return None
        _, item_id = heapq.heappop(prim.ready)
        item = prim.items[item_id]
        item.taker = Hold(token, session, lease, 0.0)
        self._lease(item.taker, now + lease)
        self._put_item(prim, item)
        return item.item_id, item.body

    def queue_done(self, name: str, item_id: str, token: str, requeue: bool) -> bool:
        """Acknowledge an item in flight with ``token`` (gone), or hand it back (ready
        again); False if it is not (its lease ran out: it went back to the queue)."""
        prim = self.prims.get(("queue", name))
        item = None if prim is None else prim.items.get(item_id)
        if prim is None or item is None or item.taker is None or item.taker.token != token:
            return False
        if requeue:
            self._requeue(prim, item)
        else:
            del prim.items[item_id]
            self.ops.append(("item", "del", name, item_id))
        return True

    def _requeue(self, prim: Prim, item: Item) -> None:
        item.taker = None
        heapq.heappush(prim.ready, (item.seq, item.item_id))
        self._put_item(prim, item)

    def queue_unfinished(self, name: str) -> int:
        prim = self.prims.get(("queue", name))
        return 0 if prim is None else len(prim.items)

    # ------------------------------------------------------------------ views, restore

    def rows(self) -> list[PrimRow]:
        return [PrimRow(p.name, p.kind, len(p.holders) + sum(
                    i.taker is not None for i in p.items.values()),
                        len(p.waiters), p.size(), p.param)
                for p in sorted(self.prims.values(), key=lambda p: (p.name, p.kind))]

    def restore_prim(self, kind: str, name: str, param: int, number: int) -> None:
        self.prims[(kind, name)] = Prim(kind, name, param, number)

    def restore_hold(self, kind: str, name: str, hold: Hold, waiting: bool) -> None:
        prim = self.prims.get((kind, name))
        if prim is None:
            return
        (prim.waiters if waiting else prim.holders)[hold.token] = hold
        self._seq = max(self._seq, hold.seq)
        self._lease(hold, hold.deadline)

    def restore_value(self, name: str, key: str, value: bytes) -> None:
        prim = self.prims.get(("dict", name))
        if prim is not None:
            prim.values[key] = value

    def restore_item(self, name: str, item: Item) -> None:
        prim = self.prims.get(("queue", name))
        if prim is None:
            return
        prim.items[item.item_id] = item
        if item.taker is None:
            heapq.heappush(prim.ready, (item.seq, item.item_id))
        else:
            self._lease(item.taker, item.taker.deadline)
        self._seq = max(self._seq, item.seq)

    def sort_waiters(self) -> None:
        """After a restore: waiters back in the order they came."""
        for prim in self.prims.values():
            prim.waiters = OrderedDict(sorted(prim.waiters.items(), key=lambda kv: kv[1].seq))
