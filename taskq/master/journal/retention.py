"""The journal's share of results kept by id (``taskq.master.state.retention``): each kept
result with the wall-clock time it is kept until, so it survives a master restart.

Written inside ``Journal._write``'s transaction, with the end of the task it belongs to; a
task with no ``result_ttl`` writes nothing here::

    Changes.retained: id -> (result, until) ──► kept_results (until as wall-clock time)
                      id -> None ──► DELETE (its TTL passed)
    load ──► [(result, until)] ──► BrokerState.retained.restore
"""

from __future__ import annotations

import sqlite3

from taskq.master.journal import schema
from taskq.master.state.records import Changes
from taskq.protocol.messages import ResultMsg


def write(db: sqlite3.Connection, changes: Changes, to_wall: float) -> None:
    """Persist the kept results in ``changes`` (inside the caller's transaction);
    ``to_wall``: the broker's clock to wall-clock time."""
    if not changes.retained:
        return
    kept = [(t, r.status.value, r.body, r.detail, r.worker, r.duration, until + to_wall)
            for t, held in changes.retained.items() if held is not None
            for r, until in (held,)]
    if kept:
        db.executemany(schema.upsert("kept_results"), kept)
    dropped = [(t,) for t, held in changes.retained.items() if held is None]
    if dropped:
        db.executemany("DELETE FROM kept_results WHERE task_id=?", dropped)


def merge_into(out: Changes, changes: Changes) -> None:
    """Fold a later group's kept results into ``out`` (``journal.merge``)."""
    out.retained.update(changes.retained)  # the latest word on each id wins


def load(db: sqlite3.Connection) -> list[tuple[ResultMsg, float]]:
    """Every kept result, with the wall-clock time it is kept until."""
    return [(ResultMsg(tid, status, body, detail, worker, duration), until)
            for tid, status, body, detail, worker, duration, until in db.execute(
                schema.select("kept_results"))]
