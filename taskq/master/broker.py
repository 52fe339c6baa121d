"""The broker the master serves: ``BrokerState`` behind one lock, with waits and a journal.

Each method is one remote call, served by the master's loop (``taskq.net.serving``). A
long-poll that finds nothing (``take``, ``fetch``, ``flush``) parks on its ``Signal``
without a thread and runs again when the signal is notified or its time is up (at most
PARKED_POLL_MAX_S); the other waits (a submit waiting for room, a cancel for a worker's
answer) block their request thread on the same condition, never longer than LONG_POLL_S.
After a call changes the state, its changes are journaled before it returns, so whatever a
caller was told is accepted is durable.

    clients ── submit / fetch / cancel ──┐
                                         ├─► Broker ─ lock ─► BrokerState
    workers ── register / heartbeat /    │                     │ drain_changes()
               take / report / release / │                     ▼
               control (cancel asks) ────┘                  Journal.write()
    reaper thread ── expire(), promote() every REAP_EVERY_S

The read-only calls (status, queues, monitor, metrics, history, inspect, explain) are in
``taskq.master.broker_views``; the calls on shared primitives in ``taskq.master.broker_prims``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from taskq import logs
from taskq.defaults import (
    CANCEL_MAX_IDS,
    JOB_OUTBOX_PREFIX,
    LONG_POLL_S,
    MAX_PENDING,
    PARKED_POLL_MAX_S,
    RESULT_TTL_S,
)
from taskq.master.broker_controls import ControlCalls
from taskq.master.broker_prims import PrimitiveCalls
from taskq.master.broker_replay import ReplayCalls
from taskq.master.broker_views import BrokerViews
from taskq.master.broker_workers import WorkerCalls
from taskq.master.journal import Journal
from taskq.master.reaper import Reaper
from taskq.master.state import BrokerState
from taskq.master.state.limits import QueueLimit
from taskq.master.takers import Takers
from taskq.net import serving
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import (
    Schedule,
    TaskMsg,
)
from taskq.protocol.replies import (
    CancelOutcome,
    Fetched,
    MasterInfo,
    Receipt,
)

log = logs.get_logger(__name__)
T = TypeVar("T")


class Broker(WorkerCalls, PrimitiveCalls, ReplayCalls, BrokerViews, ControlCalls):
    """Thread-safe facade over the broker state; the object the master exposes (its calls
    on shared primitives come from ``PrimitiveCalls``, on dead letters from ``ReplayCalls``,
    its read-only ones from ``BrokerViews``, an operator's controls from ``ControlCalls``,
    the workers' own calls from ``WorkerCalls``)."""

    def __init__(self, state: BrokerState, journal: Journal | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_pending: int = MAX_PENDING,
                 abandoned_ttl: float = RESULT_TTL_S) -> None:
        self._state = state
        self._max_pending = max_pending
        state.deps.limit = max_pending  # tasks blocked on dependencies, at most
        self._journal = journal
        state.hold_ticks = journal is not None
        self._clock = clock
        self.epoch = secrets.token_hex(8)  # this run: a worker's receipts are of one run
        self._lock = threading.Lock()
        self._takers = Takers(self._lock)  # parked takes, woken by work they can run
        self._results = serving.Signal(self._lock)
        self._space = serving.Signal(self._lock)
        self._answers = serving.Signal(self._lock)  # workers' answers to them
        self._synced = serving.Signal(self._lock)  # the journal committed
        if journal is not None:
            journal.on_durable = self._journal_committed
        self._started = clock()
        state.now = max(state.now, self._started)  # (a kept result's TTL counts from it)
        state.wall_offset = time.time() - clock()
        state.history.wall_offset = state.wall_offset
        self._stopping = threading.Event()
        self._reaper = Reaper(lock=self._lock, state=state, clock=clock, takers=self._takers,
                              commit=self._commit, journal=lambda: self._journal,
                              stopping=self._stopping, abandoned_ttl=abandoned_ttl)
        self._init_primitives()

    # ------------------------------------------------------------------ plumbing

    def _commit(self, urgent: bool = False) -> int:
        """Queue what the last call changed for the journal (caller holds the lock);
        returns the ticket to wait on for durability (0: nothing to wait for). ``urgent``:
        the caller waits for it, so the writer commits without its gathering window."""
        changes = self._state.drain_changes()
        if changes.finished:
            self._results.notify_all()
        if self._state.unjournaled:  # a new callback: leased once the journal has it
            self._reaper.wake()
        if self._journal is not None and changes:
            return self._journal.append(changes, urgent)
        return 0

    def _journal_committed(self) -> None:
        """(The journal's writer, after each commit.) Wake what waited for it; the polls
        parked on their leases' commit are answered from this thread (no hand-off)."""
        with serving.answering_here(), self._lock:
            self._synced.notify_all()

    def _receipt(self, ticket: int) -> Receipt:
        journal = self._journal
        durable = journal.durable if journal is not None else 0
        return Receipt(self.epoch, ticket if ticket > durable else 0, durable)

    def open_claims(self, until: float) -> None:
        """The master listens: restored tasks wait for their holders until ``until``."""
        with self._lock:
            self._state.open_claims(until)
            self._wake_timer()

    def _holders(self, task_ids: list[str]) -> set[str]:
        """The workers holding these tasks (lock held): the ones a cancel asks."""
        tasks = self._state.tasks
        return {rec.worker for t in task_ids if (rec := tasks.get(t)) is not None and rec.worker}

    def _wait(self, cond: serving.Signal, ready: Callable[[], T], wait: float,
              key: str | None = None) -> T:
        """Wait (lock held) until ready() is truthy or the bounded wait runs out. A call the
        master's loop serves parks instead (``net.serving``): it holds no thread, and runs
        again when ``cond`` is notified or its time is up."""
        value = ready()
        if value or wait <= 0:
            return value
        if serving.parking():
            serving.park(cond, min(wait, PARKED_POLL_MAX_S), key=key)  # raises until its time
            return value
        deadline = time.monotonic() + min(wait, LONG_POLL_S)
        while not value and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            cond.wait(remaining)
            value = ready()
        return value

    # ------------------------------------------------------------------ submitters

    def hello(self, outbox: str, *, ended: list[str] | None = None) -> MasterInfo:
        """A submitter (re)connected: results it was sent but did not acknowledge come again;
        ``ended`` names tasks whose results it already has (none of them runs again)."""
        with self._lock:
            self._state.resend(outbox)
            self._state.touch(outbox, self._clock())
            if ended:
                self._state.forget_ended(outbox, ended)
                self._commit()
        return self.info()

    def submit(self, tasks: list[TaskMsg], *, durable: bool = True) -> int:
        """Accept tasks from the front of the list while there is room; returns how many
        were taken (accepted, already known, or refused). The caller sends the rest again.

        With durable, the answer waits until the tasks are journaled; a submitter that keeps
        its tasks until they end, and resubmits them after reconnecting, need not wait.
        """
        with self._lock:
            state = self._state

            def room() -> int:
                return max(0, self._max_pending - state.pending_count())

            batch = tasks[:self._wait(self._space, room, LONG_POLL_S)]
            now = self._clock()
            waiting = state.queues.waiting_count
            accepted = state.submit(batch, now)
            if state.queues.waiting_count > waiting:  # a delayed task
                self._wake_timer()
            for outbox in {msg.outbox for msg in batch}:
                state.touch(outbox, now)
            ticket = self._commit()
            if accepted:
                self._takers.wake(accepted, {msg.options.queue for msg in batch})
            journal = self._journal
        if durable and ticket and journal is not None:
            journal.wait(ticket)  # accepted means journaled; workers may start meanwhile
        return len(batch)

    def flush(self, outbox: str, *, upto: int = 0, wait: float = 0.0) -> int:
        """How far a submitter must wait for the journal to have what it submitted: with
        ``upto`` 0, the ticket that covers every change made so far (0: it is durable
        already, or there is no journal); with a ticket, 0 once it is durable, waiting up
        to ``wait`` s (else the ticket again)."""
        with self._lock:
            journal = self._journal
            if journal is None:
                return 0
            self._state.touch(outbox, self._clock())
            if not upto:
                return 0 if journal.durable >= journal.appended else journal.appended
            done = self._wait(self._synced, lambda: journal.durable >= upto, wait)
            return 0 if done else upto

    def fetch(self, outbox: str, ack: list[str], *, max_n: int, wait: float) -> Fetched:
        """Acknowledge results, then return up to max_n new ones (and the tasks that started),
        waiting a bounded time."""
        with self._lock:
            state = self._state
            state.touch(outbox, self._clock())
            out = state.fetch(outbox, ack, max_n)
            if not (out.results or out.started or out.progress) and self._wait(
                    self._results, lambda: state.has_unsent(outbox), wait):
                out = state.fetch(outbox, [], max_n)
            self._commit()
            return out

    def open_count(self, outbox: str) -> int | None:
        with self._lock:
            return self._state.open_count(outbox)

    def known(self, task_ids: list[str]) -> list[str]:
        """The ids among these of tasks a new task may depend on: not ended, or ended with
        a result the master still holds (not fetched yet, or kept for dependents)."""
        with self._lock:
            state = self._state
            return [t for t in task_ids if t in state.tasks or t in state.deps.kept
                    or state.ended_result(t) is not None]

    def cancel(self, task_ids: list[str], *, wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome:
        """Cancel tasks that have not started; a leased one's worker is asked, and the answer
        awaited up to ``wait`` s (those still unanswered are in ``asked``: call again).
        With ``outbox``, only that outbox's tasks (the others are told as unknown). With
        ``running``, stop them even while they run (``stopping``; see ``state.stops``)."""
        if running:
            return self._stop(task_ids, outbox)
        with self._lock:
            state = self._state
            if outbox:
                task_ids = state.owned_by(outbox, task_ids)
            out = state.cancel(task_ids)
            if out.asked:
                self._takers.wake_workers(self._holders(out.asked))
                recs = [state.tasks[t] for t in out.asked]
                self._wait(self._answers, lambda: not any(r.cancel_asked for r in recs), wait)
                later = state.cancel_progress(recs)
                out.asked = later.asked
                for name in ("cancelled", "running", "unknown"):
                    getattr(out, name).extend(getattr(later, name))
            self._commit()
            if out.cancelled:
                self._space.notify_all()
            return out

    def cancel_tasks(self, task_ids: list[str], *, job: str = "",
                     running: bool = True) -> CancelOutcome:
        """An operator's cancel (``taskq cancel``): any task by its id, or every open task
        of the job named ``job``; with ``running``, stopped even while it runs. It ends
        tasks and never reads their results."""
        if type(task_ids) is not list or not all(type(t) is str for t in task_ids) \
                or type(job) is not str:
            raise ValueError("cancel_tasks takes a list of task id strings and a job name")
        if job:
            with self._lock:
                task_ids = task_ids + self._state.open_ids(JOB_OUTBOX_PREFIX + job)
        if len(task_ids) > CANCEL_MAX_IDS:
            raise ValueError(f"{len(task_ids)} task ids in one cancel: at most "
                             f"{CANCEL_MAX_IDS}; cancel them in parts")
        out = self._stop(task_ids, "") if running else self.cancel(task_ids, wait=LONG_POLL_S)
        log.warning("tasks_cancelled_by_operator", job=job or None, running=running,
                    tasks=len(task_ids), cancelled=len(out.cancelled) + len(out.stopping))
        return out

    def _stop(self, task_ids: list[str], outbox: str) -> CancelOutcome:
        """Stop tasks wherever they are; answers once the stop is journaled."""
        with self._lock:
            state = self._state
            if outbox:
                task_ids = state.owned_by(outbox, task_ids)
            out = state.stop(task_ids, self._clock())
            ticket = self._commit()
            if out.stopping:
                self._takers.wake_workers(self._holders(out.stopping))
            if out.cancelled:
                self._space.notify_all()
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)  # a stop, once told, survives a master restart
        return out

    # ------------------------------------------------------------------ schedules

    def schedule_add(self, spec: Schedule) -> bool:
        """Add a schedule, or replace the one of that name (True). Journaled before it
        answers; ValueError (as MasterError) for a bad definition."""
        with self._lock:
            replaced = self._state.schedule_add(spec, self._clock())
            ticket = self._commit()
            self._wake_timer()
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)
        log.info("schedule_added", schedule=spec.name, replaced=replaced)
        return replaced

    def schedule_remove(self, name: str) -> bool:
        with self._lock:
            removed = self._state.schedule_remove(name)
            self._commit()
            return removed

    def schedule_pause(self, name: str, *, paused: bool) -> bool:
        with self._lock:
            found = self._state.schedule_pause(name, paused, self._clock())
            self._commit()
            self._wake_timer()
            return found

    # ------------------------------------------------------------------ queues

    def queue_set(self, name: str, *, rate: float, concurrency: int) -> None:
        """Set a queue's limits (0: none); journaled before it answers."""
        limit = QueueLimit(rate, concurrency)
        limit.check()
        with self._lock:
            self._state.limits.set(name, limit)
            ticket = self._commit()
            self._takers.wake_all()
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)

    # ------------------------------------------------------------------ reaper

    def reap(self) -> None:
        """Declare silent workers lost and requeue their expired leases (``Reaper``)."""
        self._reaper.reap()

    def start_reaper(self) -> None:
        self._reaper.start()

    def _wake_timer(self) -> None:
        """A task began to wait (lock held): wake the reaper if it is due before it."""
        self._reaper.wake_if_sooner()

    def close(self) -> None:
        """Stop waits and the reaper; flush and close the journal."""
        self._stopping.set()
        with self._lock:
            self._takers.wake_all()
            self._results.notify_all()
            self._space.notify_all()
            self._takers.wake_all()
            self._answers.notify_all()
            self._synced.notify_all()
            self._reaper.wake()
        self._reaper.join(timeout=2)
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:  # outside the lock: its writer tells each commit under it
            journal.close()


_IMPLEMENTS: type[BrokerAPI] = Broker  # every remote call, as declared (checked by mypy)
