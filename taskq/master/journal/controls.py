"""The journal's share of an operator's controls: the paused queues
(``taskq.master.state.controls``). A drain is not journaled (the worker keeps it).

    Changes.paused: (queue, True) ──► INSERT paused_queues     (queue, False) ──► DELETE
    load ──► [queue, ...] ──► BrokerState.restore_pauses
"""

from __future__ import annotations

import sqlite3

from taskq.master.journal import schema
from taskq.master.state.records import Changes


def write(db: sqlite3.Connection, changes: Changes) -> None:
    """Persist the pauses and resumes of ``changes``, in order (inside the caller's
    transaction)."""
    for queue, paused in changes.paused:
        if paused:
            db.execute(schema.upsert("paused_queues"), (queue,))
        else:
            db.execute("DELETE FROM paused_queues WHERE queue=?", (queue,))


def load(db: sqlite3.Connection) -> list[str]:
    """The queues paused when the journal was last written."""
    return [queue for (queue,) in db.execute(schema.select("paused_queues", "queue"))]
