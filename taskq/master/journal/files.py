"""The journal's file: one master's lock on it, its connection and settings, and the one-time
switch of an older journal to incremental vacuum.

    lock(path) ── path.lock, flock'd for the master's life (JournalInUse names the holder)
    open_journal(path) ── incremental vacuum (a VACUUM, once per older journal), WAL,
                          synchronous, size limit ──► schema.migrate ──► the connection
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

from taskq import logs
from taskq.defaults import JOURNAL_SLACK_BYTES, JOURNAL_SYNCHRONOUS
from taskq.errors import TaskqError
from taskq.master.journal import schema

log = logs.get_logger("taskq.master.journal")

INCREMENTAL = 2  # what PRAGMA auto_vacuum reads when incremental vacuum is on
BUSY_TIMEOUT_S = 5.0  # how long a statement waits for another connection's lock


def open_journal(path: Path) -> sqlite3.Connection:
    """The journal's connection, its schema brought to the latest version."""
    db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                         isolation_level=None)
    try:
        _use_incremental_vacuum(db, path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={JOURNAL_SYNCHRONOUS}")
        db.execute(f"PRAGMA journal_size_limit={JOURNAL_SLACK_BYTES}")
        had = schema.migrate(db, path)
    except BaseException:
        db.close()
        raise
    if had != schema.LATEST:
        log.info("journal_migrated", path=str(path), version=schema.LATEST, was=had)
    return db


class JournalInUse(TaskqError):
    """Another process (a second master on the same --state) holds the journal."""


def lock(path: Path) -> int:
    """Hold ``path``.lock (flock: the kernel releases it when this process exits, however);
    JournalInUse, naming the holder, if another process holds it."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalInUse(f"the journal {path} is in use by another taskq master (pid "
                           f"{holder}): stop that one, or give this one another --state") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _use_incremental_vacuum(db: sqlite3.Connection, path: Path) -> None:
    """Turn incremental auto-vacuum on: at once for a new journal; an older one is rebuilt.

    The rebuild (VACUUM) is done whatever the journal's size: it happens once per journal,
    it copies only live rows (about what load() reads next anyway), and without it the file
    could never shrink. If it fails (it needs free disk for about twice the live rows: a copy
    and the WAL), the journal works as before and the next start tries again.
    """
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new, empty database
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return
    started = time.monotonic()
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        log.warning("journal_vacuum_failed", path=str(path), error=str(exc))
        return
    log.info("journal_converted", path=str(path), seconds=round(time.monotonic() - started, 3),
             bytes=path.stat().st_size)
