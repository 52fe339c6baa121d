"""The master's reaper thread: what happens because time passed, not because a peer called.

    every REAP_EVERY_S ── reap(): silent workers lost, their leases queued again (or failed),
                          results of submitters gone for good dropped, history pruned
    between reaps ─────── promote: waiting tasks (delayed, a retry's backoff) queued the
                          moment they are due, and schedules' ticks created; a new tick (or
                          callback task) is committed at once and held from every lease
                          until the journal has it (a master killed before would create it
                          again)
    wake_if_sooner() ──── a call made a task wait: the reaper's sleep is cut short if needed

It shares the broker's lock and state, and wakes the broker's parked takes (``Takers``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from taskq import logs
from taskq.defaults import (
    CLIENT_OUTBOX_PREFIX,
    HISTORY_PRUNE_BATCH,
    HISTORY_PRUNE_EVERY_S,
    REAP_EVERY_S,
)
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.master.takers import Takers
from taskq.net import serving

log = logs.get_logger(__name__)


class Reaper:
    """The reaper thread and the timer it sleeps on (the broker's lock)."""

    def __init__(self, *, lock: threading.Lock, state: BrokerState, clock: Callable[[], float],
                 takers: Takers, commit: Callable[[bool], int],
                 journal: Callable[[], Journal | None], stopping: threading.Event,
                 abandoned_ttl: float) -> None:
        self._lock, self._state, self._clock = lock, state, clock
        self._takers, self._commit, self._journal = takers, commit, journal
        self._stopping, self._abandoned_ttl = stopping, abandoned_ttl
        self._timer = serving.Signal(lock)  # wakes the reaper for a waiting task
        self._next_due: float | None = None  # when it is next due to promote
        self._prune_at = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reap every REAP_EVERY_S, and queue each waiting task (delayed, or waiting for a
        retry) the moment its time comes."""
        def loop() -> None:
            next_reap = self._clock() + REAP_EVERY_S
            while not self._stopping.is_set():
                if self._clock() >= next_reap:
                    self.reap()
                    next_reap = self._clock() + REAP_EVERY_S
                self._promote_until(next_reap)

        self._thread = threading.Thread(target=loop, name="taskq-reaper", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """(Lock held.) Stop sleeping now: the broker closes."""
        self._timer.notify_all()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wake_if_sooner(self) -> None:
        """A task began to wait (lock held): wake the reaper if it is due before it."""
        due = self._state.next_due()
        if due is not None and (self._next_due is None or due < self._next_due):
            self._next_due = due
            self._timer.notify_all()

    def reap(self) -> None:
        """Declare silent workers lost and requeue their expired leases."""
        with self._lock:
            state = self._state
            pending_before = state.pending_count()
            now = self._clock()
            lost = state.expire(now)
            state.promote(now)
            dropped = state.drop_abandoned(now, self._abandoned_ttl, CLIENT_OUTBOX_PREFIX)
            if now >= self._prune_at:
                self._prune_at = now + HISTORY_PRUNE_EVERY_S
                state.history.prune(now, HISTORY_PRUNE_BATCH)
                state.dead.prune(state.history.wall(now), state.history.keep_s,
                                 state.history.max_tasks)
            requeued = state.pending_count() - pending_before
            failed = [res for _, res in state.changes.finished]
            self._commit(False)
            if requeued > 0:
                self._takers.wake(requeued)
        for worker_id in lost:
            log.warning("worker_lost", worker_id=worker_id)
        for outbox in dropped:
            log.info("results_dropped", outbox=outbox, reason="submitter gone")
        if requeued > 0:
            log.info("leases_requeued", count=requeued)
        for res in failed:
            log.warning("task_failed", task_id=res.task_id, status=res.status.value,
                        detail=res.detail)

    def _promote_until(self, deadline: float) -> None:
        """Until ``deadline``, queue waiting tasks as they fall due; the ticks of schedules
        run once the journal has them (a restart would create them again)."""
        while not self._stopping.is_set():
            with self._lock:
                held = self._promote()
                if held is None:
                    now = self._clock()
                    due = self._next_due = self._state.next_due()
                    until = deadline if due is None else min(deadline, due)
                    if until <= now:
                        return
                    self._timer.wait(until - now)
                    if self._clock() >= deadline:
                        return
                    continue
            ticks, ticket, journal = held
            try:
                journal.wait(ticket)  # outside the lock: calls go on meanwhile
            except RuntimeError as exc:
                log.error("ticks_held", ticks=len(ticks), error=str(exc))
                with self._lock:  # they stay held: try again at the next reap, not at once
                    self._timer.wait(max(0.0, deadline - self._clock()))
                return
            with self._lock:
                self._state.ticks_journaled(ticks)
                self._takers.wake_all()

    def _promote(self) -> tuple[list[str], int, Journal] | None:
        """Queue what fell due (lock held); the new ticks to journal before they run."""
        if self._state.promote(self._clock()):
            self._takers.wake_all()
        journal, ticks = self._journal(), list(self._state.unjournaled)
        if not ticks or journal is None:  # (new callbacks are unjournaled too)
            return None
        self._commit(True)
        return ticks, journal.appended, journal
