"""The master's journal: accepted tasks and unfetched results in an embedded SQLite file.

The broker's state is the truth while the master runs; the journal is what survives it.
After each broker call the service hands the call's ``Changes`` here and they are written
in one transaction (WAL mode, ``synchronous=NORMAL``: a killed master loses nothing that was
acknowledged; a power cut may lose the last transactions)::

    BrokerState.changes ──► Journal.write() ──► tasks / results tables
    Journal.load() ──► BrokerState.restore_task / restore_result        (on start)

Leases are not journaled: after a restart every unfinished task is pending again, and a
worker that reconnects still holding one claims it back with its first heartbeat.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskq.defaults import JOURNAL_SYNCHRONOUS
from taskq.state import BrokerState, Changes
from taskq.wire import ResultMsg, TaskMsg, TaskOptions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, outbox TEXT NOT NULL, seq INTEGER NOT NULL,
    fn BLOB NOT NULL, args BLOB NOT NULL, timeout REAL, retries INTEGER NOT NULL,
    priority INTEGER NOT NULL, queue TEXT NOT NULL, lost INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY, outbox TEXT NOT NULL, status TEXT NOT NULL, body BLOB,
    detail TEXT NOT NULL, worker TEXT NOT NULL, duration REAL NOT NULL
);
"""


class Journal:
    """Durable copy of the broker's tasks and results; one SQLite connection, one writer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={JOURNAL_SYNCHRONOUS}")
        self._db.executescript(_SCHEMA)

    def load(self, state: BrokerState) -> tuple[int, int]:
        """Restore every journaled task and result into ``state``; returns their counts."""
        tasks = self._db.execute(
            "SELECT task_id, outbox, seq, fn, args, timeout, retries, priority, queue, lost, "
            "errors FROM tasks ORDER BY seq").fetchall()
        for tid, outbox, seq, fn, args, timeout, retries, prio, queue, lost, errors in tasks:
            msg = TaskMsg(tid, outbox, fn, args, TaskOptions(timeout, retries, prio, queue))
            state.restore_task(msg, seq, lost, errors)
        results = self._db.execute(
            "SELECT task_id, outbox, status, body, detail, worker, duration FROM results"
        ).fetchall()
        for tid, outbox, status, body, detail, worker, duration in results:
            state.restore_result(outbox, ResultMsg(tid, status, body, detail, worker, duration))
        return len(tasks), len(results)

    def write(self, changes: Changes) -> None:
        """Persist one batch of changes in a single transaction."""
        if not changes:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            if changes.added:
                db.executemany(
                    "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [(r.msg.task_id, r.msg.outbox, r.seq, r.msg.fn, r.msg.args,
                      r.msg.options.timeout, r.msg.options.retries, r.msg.options.priority,
                      r.msg.options.queue, r.lost, r.errors) for r in changes.added])
            if changes.updated:
                db.executemany("UPDATE tasks SET lost=?, errors=? WHERE task_id=?",
                               [(r.lost, r.errors, r.msg.task_id) for r in changes.updated])
            gone = changes.removed + [res.task_id for _, res in changes.finished]
            if gone:
                db.executemany("DELETE FROM tasks WHERE task_id=?", [(t,) for t in gone])
            if changes.finished:
                db.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?)",
                    [(res.task_id, outbox, res.status.value, res.body, res.detail, res.worker,
                      res.duration) for outbox, res in changes.finished])
            if changes.acked:
                db.executemany("DELETE FROM results WHERE task_id=?",
                               [(t,) for t in changes.acked])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
