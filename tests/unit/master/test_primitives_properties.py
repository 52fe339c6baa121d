"""Property tests of PrimitiveState: random interleavings of acquire, release, renewals,
clock steps, queue puts, gets, acks and master restarts, checked after every step.

A semaphore(N) never has more than N holders; no one waits while a slot is free; slots go
to waiters first come, first served; a holder keeps its slot for as long as it renews it;
every item put is in the queue or was acknowledged exactly once; and a restart rebuilt from
the journal's tables (a real SQLite database, written op by op) has the same holders,
waiters in the same order, values and items.
"""

from __future__ import annotations

import itertools
import sqlite3

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from taskq.master.journal import prims, schema
from taskq.master.state.primitives import WAIT_GRACE_S, Prim, PrimitiveState

CAPACITY = 3
LEASE = 4.0
SESSIONS = ("s0", "s1", "s2", "s3")
TOKENS = [f"t{i}" for i in range(8)]


class PrimitivesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = PrimitiveState()
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        schema.migrate(self.db, ":memory:")
        self.now = 0.0
        self.session_of = {t: SESSIONS[i % len(SESSIONS)] for i, t in enumerate(TOKENS)}
        self.put_ids = itertools.count()
        self.put: set[str] = set()
        self.acked: set[str] = set()
        self.in_flight: dict[str, str] = {}  # consumer token -> item id
        self.sem()
        self.journal()

    def sem(self) -> Prim:
        return self.state.get("semaphore", "db", CAPACITY)

    def journal(self) -> None:
        self.db.execute("BEGIN")
        prims.write(self.db, self.state.drain())
        self.db.execute("COMMIT")

    def note_grants(self, before: set[str]) -> None:
        """Whoever got a slot came before everyone still waiting."""
        sem = self.sem()
        waiting = [h.seq for h in sem.waiters.values()]
        assert waiting == sorted(waiting)
        for token in set(sem.holders) - before:
            assert all(sem.holders[token].seq < seq for seq in waiting)

    @rule(token=st.sampled_from(TOKENS))
    def acquire(self, token: str) -> None:
        before = set(self.sem().holders)
        self.state.acquire("semaphore", "db", CAPACITY, token, self.session_of[token], LEASE,
                           self.now)
        self.note_grants(before)
        self.journal()

    @rule(token=st.sampled_from(TOKENS))
    def release(self, token: str) -> None:
        sem = self.sem()
        before = set(sem.holders)
        expected = "held" if token in sem.holders else "waiting" if token in sem.waiters else ""
        assert self.state.release("semaphore", "db", token, self.now) == expected
        self.note_grants(before - {token})
        self.journal()

    @rule(session=st.sampled_from(SESSIONS))
    def renew(self, session: str) -> None:
        sem = self.sem()
        mine = [t for t, s in self.session_of.items() if s == session]
        held = {t for t in mine if t in sem.holders or t in sem.waiters}
        lost = self.state.renew(session, mine, self.now)
        assert set(lost) == set(mine) - held - set(self.in_flight)

    @rule(step=st.floats(0.1, 6.0))
    def tick(self, step: float) -> None:
        self.now += step
        sem = self.sem()
        before = set(sem.holders)
        overdue = {t for t, h in sem.holders.items() if h.deadline <= self.now}
        self.state.expire(self.now)
        assert not overdue & set(sem.holders)
        self.note_grants(before - overdue)
        for token, item_id in list(self.in_flight.items()):
            if self.state.prims[("queue", "q")].items[item_id].taker is None:
                del self.in_flight[token]
        self.journal()

    @rule()
    def put_item(self) -> None:
        item_id = f"i{next(self.put_ids)}"
        assert self.state.queue_put("q", 0, item_id, item_id.encode())
        self.put.add(item_id)
        self.journal()

    @rule(token=st.sampled_from(TOKENS))
    def get_item(self, token: str) -> None:
        if token in self.in_flight:
            return
        prim = self.state.prims.get(("queue", "q"))
        first = min(prim.ready)[1] if prim is not None and prim.ready else None
        got = self.state.queue_get("q", token, self.session_of[token], LEASE, self.now)
        assert (got[0] if got else None) == first  # FIFO: the oldest ready item
        if got is not None:
            self.in_flight[token] = got[0]
        self.journal()

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), requeue=st.booleans())
    def finish_item(self, data: st.DataObject, requeue: bool) -> None:
        token = data.draw(st.sampled_from(sorted(self.in_flight)))
        item_id = self.in_flight.pop(token)
        assert not self.state.queue_done("q", item_id, "someone-else", requeue)
        assert self.state.queue_done("q", item_id, token, requeue)
        if not requeue:
            assert item_id not in self.acked
            self.acked.add(item_id)
        self.journal()

    @rule()
    def restart(self) -> None:
        """The master dies and comes back from its journal; leases count from now."""
        old = self.state
        self.state = PrimitiveState()
        prims.load(self.db, self.state, self.now)
        for key, prim in old.prims.items():
            new = self.state.prims[key]
            assert list(new.waiters) == list(prim.waiters)
            assert set(new.holders) == set(prim.holders)
            assert new.values == prim.values and new.number == prim.number
            assert {i: (x.body, x.taker and x.taker.token) for i, x in new.items.items()} == \
                {i: (x.body, x.taker and x.taker.token) for i, x in prim.items.items()}
            assert sorted(new.ready) == sorted(prim.ready)
        assert self.state.drain() == []

    @invariant()
    def never_more_holders_than_the_value(self) -> None:
        assert len(self.sem().holders) <= CAPACITY

    @invariant()
    def nobody_waits_while_a_slot_is_free(self) -> None:
        sem = self.sem()
        assert not sem.waiters or len(sem.holders) == CAPACITY

    @invariant()
    def waiters_and_holders_are_distinct_and_timed(self) -> None:
        sem = self.sem()
        assert not set(sem.holders) & set(sem.waiters)
        for hold in sem.holders.values():
            assert hold.deadline <= self.now + LEASE
        for hold in sem.waiters.values():
            assert hold.deadline <= self.now + WAIT_GRACE_S

    @invariant()
    def no_deadline_comes_before_the_one_expiry_waits_for(self) -> None:
        earliest, due = self.state.next_deadline(), self.state.due()
        assert earliest is None or (due is not None and due <= earliest)

    @invariant()
    def no_item_is_lost_or_acknowledged_twice(self) -> None:
        prim = self.state.prims.get(("queue", "q"))
        items = set(prim.items) if prim is not None else set()
        assert items | self.acked == self.put and not items & self.acked
        ready = {i for _, i in prim.ready} if prim is not None else set()
        flying = {i for i, x in prim.items.items() if x.taker} if prim is not None else set()
        assert ready | flying == items and not ready & flying


PrimitivesMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestPrimitives = PrimitivesMachine.TestCase
