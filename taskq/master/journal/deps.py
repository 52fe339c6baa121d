"""The journal's share of task dependencies: which tasks each dependent waits for, and the
dependency results kept for dependents (``taskq.master.state.deps``).

Written inside ``Journal._write``'s transaction, so a dependency's end, its kept result
and its dependents' failure or release are durable together; read by ``Journal.load``
before the tasks, so a restored dependent finds what it waits for::

    Changes.added (with deps) ──► task_deps      Changes.deps_gone ──► DELETE task_deps
    Changes.kept: id -> result ──► dep_results    id -> None ──► DELETE dep_results
    load ──► {task id: deps}, [kept results] ──► BrokerState.deps / restore_task
"""

from __future__ import annotations

import json
import sqlite3

from taskq.master.journal import schema
from taskq.master.state.records import Changes
from taskq.protocol.messages import ResultMsg

# One transaction, keyed by task id with no separate index: a new journal stays small.


def write(db: sqlite3.Connection, changes: Changes) -> None:
    """Persist the dependency part of ``changes`` (inside the caller's transaction)."""
    rows = [(r.msg.task_id, json.dumps(r.msg.deps)) for r in changes.added if r.msg.deps]
    if rows:
        db.executemany(schema.upsert("task_deps"), rows)
    if changes.deps_gone:
        db.executemany("DELETE FROM task_deps WHERE task_id=?",
                       [(t,) for t in changes.deps_gone])
    kept = [(t, r) for t, r in changes.kept.items() if r is not None]
    if kept:
        db.executemany(schema.upsert("dep_results"),
                       [(t, r.status.value, r.body, r.detail, r.worker, r.duration)
                        for t, r in kept])
    dropped = [(t,) for t, r in changes.kept.items() if r is None]
    if dropped:
        db.executemany("DELETE FROM dep_results WHERE task_id=?", dropped)


def merge_into(out: Changes, changes: Changes) -> None:
    """Fold a later group's dependency changes into ``out`` (``journal.merge``)."""
    out.kept.update(changes.kept)  # the latest word on each kept result wins
    out.deps_gone += changes.deps_gone


def load(db: sqlite3.Connection) -> tuple[dict[str, tuple[str, ...]], list[ResultMsg]]:
    """Every journaled dependent's deps, and every kept result."""
    deps = {tid: tuple(json.loads(text))
            for tid, text in db.execute(schema.select("task_deps"))}
    kept = [ResultMsg(tid, status, body, detail, worker, duration)
            for tid, status, body, detail, worker, duration in db.execute(
                schema.select("dep_results"))]
    return deps, kept
