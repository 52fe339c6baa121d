"""The journal's tables, their columns by name, and the migrations between its versions.

A journal carries its schema version in ``PRAGMA user_version``. Opening one runs, in order,
every migration above that version, each in its own transaction with the new version, so a
new column is one more migration (never a break), and a journal written by a newer taskq
is refused with a message instead of being misread::

    open ── user_version v ── MIGRATIONS[v:] (each: BEGIN, step, user_version = n, COMMIT)
                                   └── v > LATEST: JournalTooNew

Version 0 is any journal of taskq 0.1 and before (they set no version): migration 1 creates
what is missing and adds the columns 0.1 added on open, so every such journal reaches 1.
The column lists below are the only place column order lives: every INSERT and SELECT of
the journal names its columns from them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from taskq.errors import TaskqError

COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": ("task_id", "outbox", "seq", "fn", "args", "timeout", "retries", "priority",
              "queue", "lost", "errors", "not_before", "extra", "unloadable", "holder"),
    "results": ("task_id", "outbox", "status", "body", "detail", "worker", "duration"),
    "schedules": ("name", "spec", "fn", "args"),
    "aliases": ("alias", "outbox", "target"),
    "queue_limits": ("queue", "rate", "concurrency"),
    "history": ("task_id", "n", "job", "queue", "worker", "host", "pid", "queued", "leased",
                "started", "ended", "outcome", "error_type", "detail", "final"),
    "counters": ("name", "queue", "outcome", "value"),
    "prim": ("kind", "name", "param", "number"),
    "prim_hold": ("kind", "name", "token", "session", "lease", "seq", "waiting"),
    "prim_value": ("name", "key", "body"),
    "prim_item": ("name", "item_id", "seq", "body", "token", "session", "lease"),
    "task_deps": ("task_id", "deps"),
    "dep_results": ("task_id", "status", "body", "detail", "worker", "duration"),
    "kept_results": ("task_id", "status", "body", "detail", "worker", "duration", "until"),
    "dead_letters": ("task_id", "outbox", "fn", "args", "options", "status", "ended",
                     "function", "error_type", "detail", "replayed_as", "expired"),
    "paused_queues": ("queue",),
}


def columns(table: str) -> str:
    """``"a, b, c"``: a table's columns, for a SELECT."""
    return ", ".join(COLUMNS[table])


def select(table: str, order: str = "") -> str:
    """``SELECT a, b FROM table [ORDER BY …]`` with the table's columns named."""
    tail = f" ORDER BY {order}" if order else ""
    return f"SELECT {columns(table)} FROM {table}{tail}"  # noqa: S608 -- names from COLUMNS, no input


def upsert(table: str) -> str:
    """``INSERT OR REPLACE INTO table (a, b) VALUES (?,?)`` with the table's columns named."""
    names = COLUMNS[table]
    return (f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) "  # noqa: S608 -- names from COLUMNS, no input
            f"VALUES ({','.join('?' * len(names))})")


class JournalTooNew(TaskqError):
    """The journal was written by a newer taskq (its schema version is above ours)."""


_V1_TABLES = """
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
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, fn BLOB NOT NULL, args BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY, outbox TEXT NOT NULL, target TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_limits (
    queue TEXT PRIMARY KEY, rate REAL NOT NULL, concurrency INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    task_id TEXT NOT NULL, n INTEGER NOT NULL, job TEXT NOT NULL, queue TEXT NOT NULL,
    worker TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, queued REAL NOT NULL,
    leased REAL NOT NULL, started REAL NOT NULL, ended REAL NOT NULL, outcome TEXT NOT NULL,
    error_type TEXT NOT NULL, detail TEXT NOT NULL, final INTEGER NOT NULL,
    PRIMARY KEY (task_id, n)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL, queue TEXT NOT NULL, outcome TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (name, queue, outcome)
);
CREATE TABLE IF NOT EXISTS prim (
    kind TEXT NOT NULL, name TEXT NOT NULL, param INTEGER NOT NULL, number INTEGER NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS prim_hold (
    kind TEXT NOT NULL, name TEXT NOT NULL, token TEXT NOT NULL, session TEXT NOT NULL,
    lease REAL NOT NULL, seq INTEGER NOT NULL, waiting INTEGER NOT NULL,
    PRIMARY KEY (kind, name, token));
CREATE TABLE IF NOT EXISTS prim_value (
    name TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (name, key));
CREATE TABLE IF NOT EXISTS prim_item (
    name TEXT NOT NULL, item_id TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
    token TEXT, session TEXT, lease REAL NOT NULL, PRIMARY KEY (name, item_id));
CREATE TABLE IF NOT EXISTS task_deps (
    task_id TEXT PRIMARY KEY, deps TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dep_results (
    task_id TEXT PRIMARY KEY, status TEXT NOT NULL, body BLOB, detail TEXT NOT NULL,
    worker TEXT NOT NULL, duration REAL NOT NULL
);
"""
# Columns taskq 0.1 added to an older tasks table on open: when a waiting task may start
# (wall-clock epoch seconds; 0: at once), the options beyond the first four as JSON, and
# whether a stop was asked (a cancel with running=True: it ends CANCELLED).
_V1_TASK_COLUMNS = (("not_before", "REAL NOT NULL DEFAULT 0"),
                    ("extra", "TEXT NOT NULL DEFAULT '{}'"),
                    ("stopped", "INTEGER NOT NULL DEFAULT 0"))


def _version_1(db: sqlite3.Connection) -> None:
    """The schema of taskq 0.1, from any journal it or an earlier release wrote."""
    for statement in _V1_TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    have = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    for name, kind in _V1_TASK_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")


def _version_2(db: sqlite3.Connection) -> None:
    """The workers that could not load each task, and why: a JSON object of worker id ->
    reason ('' for none), so a restarted master does not hand a task back to them."""
    db.execute("ALTER TABLE tasks ADD COLUMN unloadable TEXT NOT NULL DEFAULT ''")


def _version_3(db: sqlite3.Connection) -> None:
    """The worker a task was last leased to ('': none), so that after a restart the task
    waits for that worker alone to claim it back."""
    db.execute("ALTER TABLE tasks ADD COLUMN holder TEXT NOT NULL DEFAULT ''")


def _version_4(db: sqlite3.Connection) -> None:
    """Results kept by id for their task's result_ttl, each until a wall-clock time."""
    db.execute("CREATE TABLE IF NOT EXISTS kept_results (task_id TEXT PRIMARY KEY, "
               "status TEXT NOT NULL, body BLOB, detail TEXT NOT NULL, worker TEXT NOT NULL, "
               "duration REAL NOT NULL, until REAL NOT NULL)")


def _version_5(db: sqlite3.Connection) -> None:
    """Dead letters: the tasks that failed for good, with their calls (opaque bytes, empty
    once expired) and options (JSON), and the replays made of them (a JSON list of ids)."""
    db.execute("CREATE TABLE IF NOT EXISTS dead_letters ("
               "task_id TEXT PRIMARY KEY, outbox TEXT NOT NULL, fn BLOB NOT NULL, "
               "args BLOB NOT NULL, options TEXT NOT NULL, status TEXT NOT NULL, "
               "ended REAL NOT NULL, function TEXT NOT NULL, error_type TEXT NOT NULL, "
               "detail TEXT NOT NULL, replayed_as TEXT NOT NULL, expired INTEGER NOT NULL)")


def _version_6(db: sqlite3.Connection) -> None:
    """The paused queues (``taskq queue pause``): they lease nothing until resumed, across
    restarts."""
    db.execute("CREATE TABLE paused_queues (queue TEXT PRIMARY KEY) WITHOUT ROWID")


# MIGRATIONS[n - 1] brings a journal from version n - 1 to n. Add a step; never edit one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_version_1, _version_2,
                                                               _version_3, _version_4,
                                                               _version_5, _version_6)
LATEST = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: object) -> int:
    """Bring the journal (autocommit connection) to ``LATEST``; returns the version it had."""
    had = version(db)
    if had > LATEST:
        raise JournalTooNew(f"the journal {path} has schema version {had}, newer than this "
                            f"taskq's {LATEST}: run the taskq release that wrote it, or "
                            f"start this one with another --state")
    for number in range(had + 1, LATEST + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return had
