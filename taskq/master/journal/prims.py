"""The journal's tables for shared primitives, and how their changes are written and loaded.

``PrimitiveState`` records each change as an op, ``(table, "put" | "del", *row)``; the
journal's writer applies them in order inside the transaction that writes the tasks'
changes (``write``), and ``load`` rebuilds the state after a restart, every lease and
waiter's place counted afresh from then::

    prim  (kind, name) ── param, number          deleting one deletes its rows below
    hold  (kind, name, token) ── session, lease, seq, waiting
    value (name, key) ── body                    (dicts; bodies are opaque bytes)
    item  (name, item_id) ── seq, body, taker    (queues; a taker means in flight)
"""

from __future__ import annotations

import sqlite3

from taskq.master.journal import schema
from taskq.master.state.primitives import WAIT_GRACE_S, Hold, Item, Op, PrimitiveState

_PUT = {
    "prim": schema.upsert("prim"),
    "hold": schema.upsert("prim_hold"),
    "value": schema.upsert("prim_value"),
    "item": schema.upsert("prim_item"),
}
_DEL = {
    "hold": "DELETE FROM prim_hold WHERE kind=? AND name=? AND token=?",
    "value": "DELETE FROM prim_value WHERE name=? AND key=?",
    "item": "DELETE FROM prim_item WHERE name=? AND item_id=?",
}
_DEL_PRIM = {  # deleting a primitive deletes what it holds
    "prim": "DELETE FROM prim WHERE kind=? AND name=?",
    "prim_hold": "DELETE FROM prim_hold WHERE kind=? AND name=?",
    "dict": "DELETE FROM prim_value WHERE ?='dict' AND name=?",
    "queue": "DELETE FROM prim_item WHERE ?='queue' AND name=?",
}


def write(db: sqlite3.Connection, ops: list[Op]) -> None:
    """Apply ops in order (the caller holds a transaction open)."""
    for table, verb, *row in ops:
        if verb == "put":
            db.execute(_PUT[table], row)
        elif table == "prim":
            for sql in _DEL_PRIM.values():
                db.execute(sql, row)
        else:
            db.execute(_DEL[table], row)


def load(db: sqlite3.Connection, state: PrimitiveState, now: float) -> int:
    """Rebuild ``state`` from the tables; returns how many primitives it has."""
    for kind, name, param, number in db.execute(schema.select("prim")):
        state.restore_prim(kind, name, param, number)
    for kind, name, token, session, lease, seq, waiting in db.execute(
            schema.select("prim_hold")):
        grace = WAIT_GRACE_S if waiting else lease
        state.restore_hold(kind, name, Hold(token, session, lease, now + grace, seq),
                           bool(waiting))
    for name, key, body in db.execute(schema.select("prim_value")):
        state.restore_value(name, key, bytes(body))
    for name, item_id, seq, body, token, session, lease in db.execute(
            schema.select("prim_item", "seq")):
        taker = Hold(token, session, lease, now + lease) if token is not None else None
        state.restore_item(name, Item(item_id, seq, bytes(body), taker))
    state.sort_waiters()
    return len(state.prims)
