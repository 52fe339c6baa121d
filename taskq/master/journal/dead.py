"""The journal's share of dead letters (``taskq.master.state.dead``): the tasks that failed
for good, their calls, and the replays made of them.

Written inside ``Journal._write``'s transaction, so a task's failure (its row in ``tasks``
deleted, its result written) and its dead letter are durable together (the writer thread
reads the function's name from its pickle, off the broker's lock); read by ``Journal.load``
after the tasks::

    Changes.dead (new, replayed or expired) ──► INSERT OR REPLACE dead_letters
    Changes.dead_gone ──► DELETE dead_letters
    load ──► DeadLetters.restore, oldest first
"""

from __future__ import annotations

import json
import sqlite3

from taskq.master.journal import schema
from taskq.master.state.dead import DeadLetter, DeadLetters, function_name
from taskq.master.state.records import Changes
from taskq.protocol.messages import Status, TaskOptions


def _options(options: TaskOptions) -> str:
    o = options
    return json.dumps([o.timeout, o.retries, o.priority, o.queue, o.extra()])


def write(db: sqlite3.Connection, changes: Changes) -> None:
    """Persist the dead-letter part of ``changes`` (inside the caller's transaction)."""
    if changes.dead:
        db.executemany(schema.upsert("dead_letters"),
                       [(d.task_id, d.outbox, d.fn, d.args, _options(d.options),
                         d.status.value, d.ended, d.function or function_name(d.fn),
                         d.error_type, d.detail,
                         json.dumps(d.replayed_as), int(d.expired)) for d in changes.dead])
    if changes.dead_gone:
        db.executemany("DELETE FROM dead_letters WHERE task_id=?",
                       [(t,) for t in changes.dead_gone])


def merge_into(out: Changes, changes: Changes) -> None:
    """Fold a later group's dead-letter changes into ``out`` (``journal.merge``)."""
    gone = set(changes.dead_gone)
    out.dead = [d for d in out.dead if d.task_id not in gone] + changes.dead
    out.dead_gone += changes.dead_gone


def load(db: sqlite3.Connection, dead: DeadLetters) -> int:
    """Restore every journaled dead letter into ``dead``; returns how many."""
    rows = db.execute(schema.select("dead_letters", "ended")).fetchall()
    for (task_id, outbox, fn, args, options, status, ended, function, error_type, detail,
         replayed_as, expired) in rows:
        timeout, retries, priority, queue, extra = json.loads(options)
        dead.restore(DeadLetter(
            task_id=task_id, outbox=outbox, fn=bytes(fn), args=bytes(args),
            options=TaskOptions.with_extra(timeout, retries, priority, queue, extra),
            status=Status(status), ended=ended, function=function, error_type=error_type,
            detail=detail, replayed_as=list(json.loads(replayed_as)), expired=bool(expired)))
    return len(rows)
