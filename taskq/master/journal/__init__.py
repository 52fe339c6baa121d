"""The master's journal: accepted tasks and unfetched results in an embedded SQLite file.

The broker's state is the truth while the master runs; the journal is what survives it.
After each broker call the service appends the call's ``Changes``; a writer thread commits
everything appended so far in one transaction (group commit: WAL mode,
``synchronous=NORMAL``), and a call that must be durable before it answers (a submit)
waits for its ticket. A worker's report does not wait: its answer carries the ticket and
how far the journal has committed (``durable``), and the worker keeps the results until a
later answer says they are in (``on_durable`` tells the broker of each commit). A killed
master loses nothing it acknowledged; a power cut may lose the last transactions::

    broker call ── append(changes) -> ticket ──► queue ──► writer thread: one transaction
         └──────── wait(ticket) ◄──────────── durable ticket ◄──┘   (tasks added and ended
                                       on_durable() ◄──┘            in one group cancel out)
    Journal.load() ──► BrokerState.restore_task / restore_result        (on start)

The files shrink back to what is still live: the database uses incremental auto-vacuum
(a journal made without it is rebuilt once, on open). When the writer has had nothing to
commit for JOURNAL_IDLE_S, or at the latest JOURNAL_UPKEEP_MAX_S after the journal first
changed, it runs a round of upkeep bounded by JOURNAL_UPKEEP_BUDGET_S: it frees the pages
deleted rows left (``incremental_vacuum``) and truncates the WAL (``wal_checkpoint``).
Upkeep never runs in a broker call; free space and WAL under JOURNAL_SLACK_BYTES are
left alone, for new rows and commits to reuse.

Leases are not journaled: after a restart every unfinished task is pending again, and a
worker that reconnects still holding one claims it back with its first heartbeat.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskq import logs
from taskq.defaults import (
    JOURNAL_IDLE_S,
    JOURNAL_SLACK_BYTES,
    JOURNAL_UPKEEP_BUDGET_S,
    JOURNAL_UPKEEP_MAX_S,
    JOURNAL_VACUUM_PAGES,
    JOURNAL_WINDOW_S,
    STATS_WINDOWS,
)
from taskq.master.journal import controls as controls_table
from taskq.master.journal import dead as dead_table
from taskq.master.journal import deps as deps_table
from taskq.master.journal import files, schema
from taskq.master.journal import prims as prims_table
from taskq.master.journal import retention as retention_table
from taskq.master.state import BrokerState, Changes, TaskRecord
from taskq.master.state.history import Attempt
from taskq.master.state.limits import QueueLimit
from taskq.master.state.primitives import PrimitiveState
from taskq.master.state.stats import Histogram
from taskq.protocol.messages import (
    DEFAULT_OPTIONS,
    ResultMsg,
    Schedule,
    TaskMsg,
    TaskOptions,
    TaskState,
)

log = logs.get_logger(__name__)

_UPSERT_TASK = schema.upsert("tasks")
_UPSERT_RESULT = schema.upsert("results")
_UPSERT_HISTORY = schema.upsert("history")


class Journal:
    """Durable copy of the broker's tasks and results; one SQLite connection, one writer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock_fd = files.lock(path)  # one master per journal, released when it exits
        self._wal = Path(f"{path}-wal")
        try:
            self._db = files.open_journal(path)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._dblock = threading.Lock()  # the writer and direct write() callers share _db
        self.commit_seconds = Histogram()  # how long each transaction took (for /metrics)
        self._cond = threading.Condition()
        self._queue: list[Changes] = []
        self._appended = 0
        self._durable = 0
        self.on_durable: Callable[[], None] | None = None  # after each commit (writer thread)
        self._error: BaseException | None = None
        self._closing = False
        self._urgent = False  # something queued is waited on: commit without gathering
        # writer thread only: when the journal first changed since its last upkeep (a
        # previous run may have left free pages), and how long to be idle before a round
        self._upkeep_due: float | None = time.monotonic()
        self._upkeep_pause = JOURNAL_IDLE_S
        self._uncheckpointed = False  # pages were freed that the database file still holds
        self._writer = threading.Thread(target=self._write_loop, name="taskq-journal",
                                        daemon=True)
        self._writer.start()

    def append(self, changes: Changes, urgent: bool = False) -> int:
        """Queue changes for the writer; returns the ticket to wait() on. ``urgent`` ends
        the writer's gathering window at once (a caller waits on it, and one at a time)."""
        with self._cond:
            if urgent or not self._queue:  # else the writer is gathering: let it be
                self._cond.notify_all()
            self._urgent = self._urgent or urgent
            self._queue.append(changes)
            self._appended += 1
            return self._appended

    @property
    def appended(self) -> int:
        """The last ticket handed out: every change made so far is in it or before it."""
        return self._appended

    @property
    def durable(self) -> int:
        """The last ticket committed: every change up to it survives a master SIGKILL."""
        return self._durable

    def wait(self, ticket: int) -> None:
        """Block until every change up to ``ticket`` is committed; raise if writing failed."""
        with self._cond:
            self._cond.wait_for(lambda: self._durable >= ticket or self._error is not None)
            if self._durable < ticket:
                raise RuntimeError(f"the journal could not be written: {self._error}")

    def problem(self) -> str | None:
        """Why changes cannot be written now (None: they can), in a few words: a commit
        failed, the writer stopped, or the file or its folder is gone or read-only."""
        if self._error is not None:
            return "the journal's last commit failed"
        if not self._writer.is_alive():
            return "the journal's writer has stopped"
        if not all(os.access(p, os.W_OK) for p in (self.path, self.path.parent)):
            return "the journal's file is not writable"
        return None

    def _next_batch(self) -> tuple[list[Changes], int] | None:
        """What to commit next and the ticket it makes durable; an empty batch once the
        writer has been idle for the upkeep pause; None when closing with nothing queued."""
        with self._cond:
            pause = None if self._upkeep_due is None else self._upkeep_pause
            if not self._cond.wait_for(lambda: self._queue or self._closing, pause):
                return [], 0
            if not self._queue:
                return None
            # gather what the next calls append: one transaction instead of several,
            # and a task that starts and ends in the window is never written
            self._cond.wait_for(lambda: self._closing or self._urgent, JOURNAL_WINDOW_S)
            batch, self._queue, self._urgent = self._queue, [], False
            return batch, self._appended

    def _write_loop(self) -> None:
        while (job := self._next_batch()) is not None:
            batch, upto = job
            if not batch:
                self._upkeep(idle=True)
                continue
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
            if self.on_durable is not None:
                self.on_durable()
            self._upkeep_pause = JOURNAL_IDLE_S
            now = time.monotonic()
            if self._upkeep_due is None:
                self._upkeep_due = now
            elif now - self._upkeep_due >= JOURNAL_UPKEEP_MAX_S:
                self._upkeep(idle=False)  # commits never pause: one round between two

    def _upkeep(self, idle: bool) -> None:
        """One bounded round of giving freed space back to the disk, then plan the next."""
        try:
            more = self._shrink(time.monotonic() + JOURNAL_UPKEEP_BUDGET_S, idle)
        except sqlite3.Error as exc:  # the journal still works; try again after a commit
            log.warning("journal_upkeep_failed", error=str(exc))
            more = False
        if not more:
            self._upkeep_due = None
        elif idle:
            self._upkeep_pause = 0.0  # still idle: go on at once
        else:
            self._upkeep_due = time.monotonic()  # under load, one round per UPKEEP_MAX_S

    def _shrink(self, deadline: float, idle: bool) -> bool:
        """Free pages and truncate the WAL until done or ``deadline``, or (idle) until
        something is queued; returns whether it stopped with work left."""
        with self._dblock:
            db = self._db
            if self._free_pages() * self._page > JOURNAL_SLACK_BYTES:
                while self._free_pages() > 0:
                    # a racy peek at the queue is enough: it only ends the round early
                    if time.monotonic() >= deadline or (idle and self._queue):
                        return True
                    # the pragma frees one page per step, and execute() steps once
                    db.executescript(f"PRAGMA incremental_vacuum({JOURNAL_VACUUM_PAGES})")
                    self._uncheckpointed = True
            if self._uncheckpointed or self._wal_bytes() > JOURNAL_SLACK_BYTES:
                self._checkpoint()
            return False

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file, which only then drops the pages a vacuum
        freed, and truncate the WAL; skipped while another connection reads (waiting for a
        reader that never ends would hold the writer)."""
        db = self._db
        db.execute("PRAGMA busy_timeout=0")
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            db.execute(f"PRAGMA busy_timeout={int(files.BUSY_TIMEOUT_S * 1000)}")
        self._uncheckpointed = self._uncheckpointed and bool(busy)
        log.debug("journal_shrunk", checkpointed=not busy, db_bytes=self.path.stat().st_size,
                  wal_bytes=self._wal_bytes())

    def _free_pages(self) -> int:
        return int(self._db.execute("PRAGMA freelist_count").fetchone()[0])

    def _wal_bytes(self) -> int:
        try:
            return self._wal.stat().st_size
        except FileNotFoundError:
            return 0

    def load(self, state: BrokerState) -> tuple[int, int]:
        """Restore every journaled task and result into ``state``; returns their counts."""
        with self._dblock:
            tasks, results, schedules, limits, aliases = (
                self._db.execute(schema.select(table, order)).fetchall()
                for table, order in (("tasks", "seq"), ("results", ""),
                                     ("schedules", ""), ("queue_limits", ""), ("aliases", "")))
            deps, kept = deps_table.load(self._db)
            retained = retention_table.load(self._db)
            paused = controls_table.load(self._db)
            stops = self._db.execute("SELECT task_id FROM tasks WHERE stopped").fetchall()
        for result in kept:  # before the tasks: a restored dependent looks them up
            state.deps.restore_kept(result)
        to_state = time.monotonic() - time.time()  # wall clock -> the broker's clock
        for result, until in retained:
            state.retained.restore(result, until + to_state)
        shared: dict[tuple[Any, ...], TaskOptions] = {}  # one object per set of options
        for (tid, outbox, seq, fn, args, timeout, retries, prio, queue, lost, errors,
             not_before, extra, refused, holder) in tasks:
            key = (timeout, retries, prio, queue, extra)
            options = shared.get(key)
            if options is None:  # equal options, one object (a retry's trace_prev is a copy)
                options = shared[key] = TaskOptions.with_extra(timeout, retries, prio, queue,
                                                               json.loads(extra))
            msg = TaskMsg(tid, outbox, fn, args, options, deps=deps.get(tid, ()))
            state.restore_task(msg, seq, lost, errors,
                               not_before + to_state if not_before else 0.0,
                               json.loads(refused) if refused else None, holder)
        state.deps.forget_unreferenced()
        for tid, outbox, status, body, detail, worker, duration in results:
            state.restore_result(outbox, ResultMsg(tid, status, body, detail, worker, duration))
        for row in schedules:
            state.schedules.restore(_schedule(*row))
        for queue, rate, concurrency in limits:
            state.limits.restore(queue, QueueLimit(rate, concurrency))
        for alias, outbox, target in aliases:
            state.restore_alias(alias, outbox, target)
        for (tid,) in stops:  # a stop asked before the restart: the task ends CANCELLED
            state.restore_stop(tid)
        state.restore_pauses(paused)
        self._load_history(state)
        with self._dblock:
            dead_table.load(self._db, state.dead)
        return len(tasks), len(results)

    def load_primitives(self, prims: PrimitiveState, now: float) -> int:
        """Restore every journaled shared primitive; returns how many there are."""
        with self._dblock:
            return prims_table.load(self._db, prims, now)

    def _load_history(self, state: BrokerState) -> None:
        """Restore the counters and the attempts journaled for the history, oldest first."""
        with self._dblock:
            counters = self._db.execute(schema.select("counters"))
            for name, queue, outcome, value in counters.fetchall():
                state.history.stats.restore((name, queue, outcome), value)
            rows = self._db.execute(
                schema.select("history", "final, ended, task_id, n")).fetchall()
        names = schema.COLUMNS["history"]
        for row in rows:
            attempt = Attempt(**dict(zip(names, row, strict=True)))
            attempt.final = bool(attempt.final)
            state.history.restore(attempt)
        state.history.replay_windows(time.time() - STATS_WINDOWS * 60.0)

    def write(self, changes: Changes) -> None:
        """Persist one batch of changes in a single transaction."""
        if not changes:
            return
        with self._dblock:
            began = time.perf_counter()
            _write(self._db, changes)
            self.commit_seconds.observe(time.perf_counter() - began)

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
            os.close(self._lock_fd)  # the next master may open it


_SCHEDULE_FIELDS = ("cron", "every", "tz", "catch_up", "paused", "next_run", "last_run",
                    "last_task", "last_outcome")


def _schedule_fields(spec: Schedule) -> dict[str, Any]:
    fields: dict[str, Any] = {name: getattr(spec, name) for name in _SCHEDULE_FIELDS}
    o = spec.options
    fields["options"] = [o.timeout, o.retries, o.priority, o.queue, o.extra()]
    return fields


def _schedule(name: str, spec: str, fn: bytes, args: bytes) -> Schedule:
    fields = json.loads(spec)
    timeout, retries, priority, queue, extra = fields.pop("options")
    options = TaskOptions.with_extra(timeout, retries, priority, queue, extra)
    return Schedule(name, fn, args, options, **fields)


def _wall(rec: TaskRecord, to_wall: float) -> float:
    """When a waiting task may start, as wall-clock time (0: it does not wait)."""
    return rec.not_before + to_wall if rec.state is TaskState.WAITING else 0.0


def _extra(options: TaskOptions) -> str:
    """The options beyond the first four, as the ``extra`` column's JSON."""
    return "{}" if options is DEFAULT_OPTIONS else json.dumps(options.extra())


def _refused(rec: TaskRecord) -> str:
    """The workers that could not load a task, and why, as JSON ('' for none)."""
    return json.dumps(rec.refused_by) if rec.refused_by else ""


def _write_settings(db: sqlite3.Connection, changes: Changes) -> None:
    """Schedules and queue limits (inside ``_write``'s transaction)."""
    if changes.schedules:
        db.executemany(schema.upsert("schedules"),
                       [(s.name, json.dumps(_schedule_fields(s)), s.fn, s.args)
                        for s in changes.schedules])
    if changes.schedules_removed:
        db.executemany("DELETE FROM schedules WHERE name=?",
                       [(n,) for n in changes.schedules_removed])
    if changes.joined:
        db.executemany(schema.upsert("aliases"), changes.joined)
    if changes.unjoined:
        db.executemany("DELETE FROM aliases WHERE alias=?", [(a,) for a in changes.unjoined])
    for queue, limit in changes.limits:  # in order: a later one wins
        if limit is None:
            db.execute("DELETE FROM queue_limits WHERE queue=?", (queue,))
        else:
            db.execute(schema.upsert("queue_limits"),
                       (queue, limit.rate, limit.concurrency))


def _write(db: sqlite3.Connection, changes: Changes) -> None:
    """Apply ``changes`` in one transaction (rolled back if any statement fails)."""
    db.execute("BEGIN")
    try:
        to_wall = time.time() - time.monotonic()  # the broker's clock -> wall clock
        _write_tasks(db, changes, to_wall)
        if changes.stops:
            db.executemany("UPDATE tasks SET stopped=1 WHERE task_id=?",
                           [(t,) for t in changes.stops])
        gone = changes.removed + [res.task_id for _, res in changes.finished]
        if gone:
            db.executemany("DELETE FROM tasks WHERE task_id=?", [(t,) for t in gone])
        if changes.finished:
            db.executemany(
                _UPSERT_RESULT,
                [(res.task_id, outbox, res.status.value, res.body, res.detail, res.worker,
                  res.duration) for outbox, res in changes.finished])
        _write_settings(db, changes)
        if changes.acked:
            db.executemany("DELETE FROM results WHERE task_id=?", [(t,) for t in changes.acked])
        if changes.prims:
            prims_table.write(db, changes.prims)
        deps_table.write(db, changes)
        retention_table.write(db, changes, to_wall)
        dead_table.write(db, changes)
        controls_table.write(db, changes)
        _write_history(db, changes)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _write_tasks(db: sqlite3.Connection, changes: Changes, to_wall: float) -> None:
    """The tasks added, their updates, and the workers they were leased to."""
    leased = changes.leased  # the last worker each was leased to ('': queued again since)
    if changes.added:
        db.executemany(_UPSERT_TASK, [(
            r.msg.task_id, r.msg.outbox, r.seq, r.msg.fn, r.msg.args,
            r.msg.options.timeout, r.msg.options.retries, r.msg.options.priority,
            r.msg.options.queue, r.lost, r.errors, _wall(r, to_wall), _extra(r.msg.options),
            _refused(r), leased.get(r.msg.task_id, "")) for r in changes.added])
        if leased:  # a task added and leased in one group is written once, with its holder
            added = {r.msg.task_id for r in changes.added}
            leased = {t: w for t, w in leased.items() if t not in added}
    if changes.updated:
        db.executemany("UPDATE tasks SET lost=?, errors=?, not_before=?, unloadable=?, "
                       "extra=? WHERE task_id=?",
                       [(r.lost, r.errors, _wall(r, to_wall), _refused(r),
                         _extra(r.msg.options), r.msg.task_id)
                        for r in changes.updated])
    if leased:
        db.executemany("UPDATE tasks SET holder=? WHERE task_id=?",
                       [(w, t) for t, w in leased.items()])


def _write_history(db: sqlite3.Connection, changes: Changes) -> None:
    if changes.attempts:
        db.executemany(_UPSERT_HISTORY,
                       [(a.task_id, a.n, a.job, a.queue, a.worker, a.host, a.pid, a.queued,
                         a.leased, a.started, a.ended, a.outcome, a.error_type, a.detail,
                         int(a.final)) for a in changes.attempts])
    if changes.history_gone:
        db.executemany("DELETE FROM history WHERE task_id=?",
                       [(t,) for t in changes.history_gone])
    if changes.counts:
        db.executemany(
            "INSERT INTO counters (name, queue, outcome, value) VALUES (?,?,?,?) "
            "ON CONFLICT (name, queue, outcome) "
            "DO UPDATE SET value = value + excluded.value",
            [(*key, n) for key, n in changes.counts.items()])


def merge(batch: list[Changes]) -> Changes:
    """One set of changes equivalent to applying ``batch`` in order.

    A task added and ended within the batch is never written, nor is a result written and
    acknowledged within it.
    """
    if len(batch) == 1:
        return batch[0]
    out = Changes()
    final: dict[str, Schedule | None] = {}  # each schedule as the batch leaves it
    for changes in batch:
        out.added += changes.added
        out.updated += changes.updated
        out.finished += changes.finished
        out.removed += changes.removed
        out.acked += changes.acked
        out.prims += changes.prims
        final.update((s.name, s) for s in changes.schedules)
        final.update(dict.fromkeys(changes.schedules_removed))
        out.limits += changes.limits
        out.joined += changes.joined
        out.unjoined += changes.unjoined
        out.attempts += changes.attempts
        out.history_gone += changes.history_gone
        out.counts.update(changes.counts)
        out.leased.update(changes.leased)  # the last lease of a task wins
        deps_table.merge_into(out, changes)
        retention_table.merge_into(out, changes)
        dead_table.merge_into(out, changes)
        out.stops += changes.stops
        out.paused += changes.paused
    out.schedules = [s for s in final.values() if s is not None]
    out.schedules_removed = [name for name, s in final.items() if s is None]
    added = {r.msg.task_id for r in out.added}
    ended = set(out.removed) | {res.task_id for _, res in out.finished}
    transient = added & ended
    if ended and out.leased:
        out.leased = {t: w for t, w in out.leased.items() if t not in ended}
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
