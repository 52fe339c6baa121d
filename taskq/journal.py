"""The master's journal: accepted tasks and unfetched results in an embedded SQLite file.

The broker's state is the truth while the master runs; the journal is what survives it.
After each broker call the service appends the call's ``Changes``; a writer thread commits
everything appended so far in one transaction (group commit: WAL mode,
``synchronous=NORMAL``), and a call that must be durable before it answers (a submit)
waits for its ticket. A killed master loses nothing it acknowledged; a power cut may lose
the last transactions::

    broker call ── append(changes) -> ticket ──► queue ──► writer thread: one transaction
         └──────── wait(ticket) ◄──────────── durable ticket ◄──┘   (tasks added and ended
                                                                      in one group cancel out)
    Journal.load() ──► BrokerState.restore_task / restore_result        (on start)

Leases are not journaled: after a restart every unfinished task is pending again, and a
worker that reconnects still holding one claims it back with its first heartbeat.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from taskq import logs
from taskq.defaults import JOURNAL_SYNCHRONOUS, JOURNAL_WINDOW_S
from taskq.state import BrokerState, Changes
from taskq.wire import ResultMsg, TaskMsg, TaskOptions

log = logs.get_logger("taskq.journal")

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
        self._cond = threading.Condition()
        self._queue: list[Changes] = []
        self._appended = 0
        self._durable = 0
        self._error: BaseException | None = None
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="taskq-journal",
                                        daemon=True)
        self._writer.start()

    def append(self, changes: Changes) -> int:
        """Queue changes for the writer; returns the ticket to wait() on."""
        with self._cond:
            self._queue.append(changes)
            self._appended += 1
            self._cond.notify_all()
            return self._appended

    def wait(self, ticket: int) -> None:
        """Block until every change up to ``ticket`` is committed; raise if writing failed."""
        with self._cond:
            self._cond.wait_for(lambda: self._durable >= ticket or self._error is not None)
            if self._durable < ticket:
                raise RuntimeError(f"the journal could not be written: {self._error}")

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                # gather what the next calls append: one transaction instead of several,
                # and a task that starts and ends in the window is never written
                self._cond.wait_for(lambda: self._closing, JOURNAL_WINDOW_S)
                batch, self._queue = self._queue, []
                upto = self._appended
            try:
                self.write(merge(batch))
            except Exception as exc:
                log.error("journal_write_failed", error=str(exc))
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._durable = upto
                self._cond.notify_all()

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
        """Write what is queued, checkpoint the WAL into the database file, and close."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()


def merge(batch: list[Changes]) -> Changes:
    """One set of changes equivalent to applying ``batch`` in order.

    A task added and ended within the batch is never written, nor is a result written and
    acknowledged within it.
    """
    if len(batch) == 1:
        return batch[0]
    out = Changes()
    for changes in batch:
        out.added += changes.added
        out.updated += changes.updated
        out.finished += changes.finished
        out.removed += changes.removed
        out.acked += changes.acked
    added = {r.msg.task_id for r in out.added}
    ended = set(out.removed) | {res.task_id for _, res in out.finished}
    transient = added & ended
    if transient:
        out.added = [r for r in out.added if r.msg.task_id not in transient]
        out.updated = [r for r in out.updated if r.msg.task_id not in transient]
        out.removed = [t for t in out.removed if t not in transient]
    acked = set(out.acked)
    shown = {res.task_id for _, res in out.finished} & acked
    if shown:
        # Their results are never written, but tasks journaled by an earlier group still end.
        out.removed += [r.task_id for _, r in out.finished
                        if r.task_id in shown and r.task_id not in added]
        out.finished = [(o, r) for o, r in out.finished if r.task_id not in shown]
        out.acked = [t for t in out.acked if t not in shown]
    return out
