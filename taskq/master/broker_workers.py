"""The broker's calls that workers make: join, beat, poll for tasks, report, hand back.

Mixed into ``taskq.master.broker.Broker``, whose lock, state, clock, journal and parked
polls they share (the pure logic is ``taskq.master.state``, the liveness part of it
``state.liveness``)::

    register(hello) ── a worker joins (again): its leases, its claims after a restart
    beat(Beat)      ── answered at once: the next interval, send the held list?, drain?
    heartbeat(held) ── the held list, on a join or when the digests differ
    peer_gone(id)   ── its poll's connection ended: lost after lost_after unless it rejoins
    take(hold)      ── parks until there is work for it (or a cancel to ask); answered
                       once the journal has its leases (or naming the ticket the worker
                       waits for before it starts them, when the commit is slow). It
                       renews the worker as a beat does, and answers what a beat would
    report(results) ── answered at once with a Receipt (the journal ticket of the results)
    release(ids)    ── unstarted tasks back to the queue; with goodbye, the worker leaves
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from taskq import logs
from taskq.defaults import BATCH_BYTES, LONG_POLL_S, PREFETCH_MIN
from taskq.master.broker_core import BrokerCore
from taskq.master.state import WorkerInfo
from taskq.net import serving
from taskq.protocol.messages import Beat, ResultMsg, TaskMsg, WorkerHello, check_beat, check_vitals
from taskq.protocol.replies import Beaten, Leased, MasterInfo, Receipt

log = logs.get_logger("taskq.master.broker")

# How long a take's answer waits for the journal to commit its leases before it goes with
# their ticket instead: commits take milliseconds; a longer wait only holds a slow one back.
COMMIT_WAIT_S = 1.0


class WorkerCalls(BrokerCore):
    """The workers' calls; see the module docstring."""

    info: Callable[[], MasterInfo]

    def register(self, hello: WorkerHello) -> MasterInfo:
        info = WorkerInfo(hello.worker_id, hello.host, hello.pid, hello.procs,
                          tuple(hello.queues), pool=getattr(hello, "pool", "processes"),
                          resources=tuple(getattr(hello, "resources", ())),
                          draining=bool(getattr(hello, "draining", False)))
        with self._lock:
            self._state.register(info, self._clock())
            self._tell_asks(hello.worker_id)  # asks it may not have had answered
            self._takers.wake_worker(hello.worker_id)
        log.info("worker_joined", worker_id=hello.worker_id, host=hello.host,
                 pid=hello.pid, procs=hello.procs)
        return replace(self.info(), heartbeat=info.beat)

    def heartbeat(self, worker_id: str, held: list[str], running: int,
                  *, memory: int = 0, progress: dict[str, Any] | None = None) -> float:
        """Renew a worker and its leases; returns the seconds until its next heartbeat (0: it
        is not known here, and must register again). ``memory``: the worker's resident
        bytes, its pool processes included (0: unknown); ``progress``: task id -> (done,
        total, message) of its tasks that reported since the last heartbeat (kept in memory
        only: see ``taskq.worker.report``)."""
        check_vitals(memory, progress)
        with self._lock:
            known = self._state.heartbeat(worker_id, held, running, self._clock(), memory,
                                          progress)
            self._tell_asks(worker_id)  # a task stopped while it was away, still held there
            worker = self._state.workers.get(worker_id)
            return self._state.beat(worker) if known and worker is not None else 0.0

    def _tell_asks(self, worker_id: str) -> None:
        """Wake the worker's parked poll if it has asks (lock held)."""
        if self._state.has_asks(worker_id):
            self._takers.wake_workers([worker_id])

    def take(self, worker_id: str, hold: int, *, wait: float, received: str | None = None,
             answers: dict[str, bool] | None = None) -> Leased:
        """A worker's poll: lease tasks until it holds ``hold`` (fewer to share a queue
        fairly), and hand it new cancel requests, waiting (bounded) for either. A report
        that frees room wakes it. ``received``: the first task id of the last batch it
        received (``state.arrived``); ``answers``: its answers to cancel requests (True:
        dropped before it started). A poll renews the worker as a beat does, and is
        answered with what a beat's answer says (``Leased``)."""
        link = serving.name_peer(worker_id)  # its connection's end is a sign: see peer_gone
        with self._lock:
            state = self._state
            now = self._clock()
            worker = self._heard_from(worker_id, link)
            if worker is None:  # lost, or never joined: it registers again at once
                return Leased(tasks=[], asks=[], beat=0.0)
            if received is not None:  # a batch it never got goes back to the queue now
                state.arrived(worker_id, received)
            asks = self._answered(worker_id, answers or {})
            queues = worker.queues

            def room() -> int:
                held = state.workers.get(worker_id)
                return hold - len(held.held) if held is not None else 0

            def ready() -> bool:
                return state.has_asks(worker_id) or state.drain_untold(worker_id) or (
                    room() > 0 and any(
                    state.pending_by_queue[q] > 0 for q in queues) and state.can_lease(
                    queues, self._clock(), worker_id))

            # waiting tasks are queued by the reaper's timer, not here
            token = state.limits.next_token(queues, now) if state.limits.by_queue else None
            if token is not None:  # a rate-limited queue: wake when its next token is there
                wait = min(wait, max(0.0, token - now) + 0.001)
            if not asks:
                self._wait(self._takers.signal(worker), ready, wait, key=worker_id)
                asks = state.control(worker_id, {})
            tasks = state.lease(worker_id, self._fair_share(worker_id, room()), self._clock(),
                                BATCH_BYTES, track=received is not None)
            if not tasks:
                return self._polled(worker_id, tasks, asks)
            self._space.notify_all()
            # the worker waits for this before it starts them: a master killed meanwhile
            # restores them unleased, and they must not run both there and elsewhere
            ticket = self._commit(urgent=True)
            if ticket and serving.parking():  # answered once committed: no confirming call
                serving.answer_later(self._synced, COMMIT_WAIT_S, functools.partial(
                    self._leased, worker_id, tasks, asks, ticket))
            return self._polled(worker_id, tasks, asks, self._receipt(ticket).ticket)

    def _heard_from(self, worker_id: str, link: int | None = None) -> WorkerInfo | None:
        """Any call renews its worker (lock held), but a parked one run again said nothing
        new: a frozen worker's poll, woken by others' work, keeps no one alive. The
        worker's record, None if it is not known here."""
        if serving.resumed():
            return self._state.workers.get(worker_id)
        return self._state.heard_from(worker_id, self._clock(), link)

    def _polled(self, worker_id: str, tasks: list[TaskMsg], asks: list[str],
                ticket: int = 0) -> Leased:
        """A poll's answer (lock held), with what a beat's would say (``Leased``)."""
        state = self._state
        worker = state.workers.get(worker_id)
        if worker is None:  # lost while it waited: it joins again, its leases went back
            return Leased(tasks=[], asks=asks, beat=0.0)
        return Leased(tasks=tasks, asks=asks, ticket=ticket, beat=state.beat(worker),
                      drain=state.drain_for_poll(worker_id))

    def _leased(self, worker_id: str, tasks: list[TaskMsg], asks: list[str],
                ticket: int) -> Leased:
        """A parked take's answer once its leases are journaled; if that takes longer than
        COMMIT_WAIT_S, with their ticket (the worker then asks until it is durable). A
        worker lost meanwhile gets none of them: they went back to the queue."""
        with self._lock:
            journal = self._journal
            if journal is not None:
                self._wait(self._synced, lambda: journal.durable >= ticket, COMMIT_WAIT_S)
            return self._polled(worker_id, tasks, asks, self._receipt(ticket).ticket)

    def peer_gone(self, worker_id: str, link: int) -> None:
        """The connection (number ``link``) of a worker's poll ended: its process died, or
        it reconnects (and joins again). Unless it is heard from again it is lost
        ``lost_after`` from now, not after LOST_BEATS of its beat interval (which a big crowd
        makes long); the end of a connection it no longer polls on says nothing."""
        with self._lock:
            if self._state.hung_up(worker_id, self._clock(), link):
                log.info("worker_hung_up", worker_id=worker_id)

    def _answered(self, worker_id: str, answers: dict[str, bool]) -> list[str]:
        """Take a worker's answers to cancel requests (lock held); its new requests."""
        asks = self._state.control(worker_id, answers)
        if answers:
            self._commit()
            self._answers.notify_all()
            self._results.notify_all()
        return asks

    def _fair_share(self, worker_id: str, n: int) -> int:
        """Cap a lease at half this worker's share of what is queued in its queues (among
        the workers that serve them), so that no worker hoards what an idle one could run
        (at least two tasks per process, to keep it busy); halving makes the shares converge
        in finer steps as the queue drains."""
        state = self._state
        worker = state.workers.get(worker_id)
        if worker is None or len(state.workers) < 2:
            return n
        share = -(-state.crowd.share(worker, state.pending_by_queue) // 2)  # half, rounded up
        return min(n, max(share, worker.procs * PREFETCH_MIN))

    def report(self, worker_id: str, results: list[ResultMsg], *,
               started: list[str] | None = None, resent: bool = False,
               durable_to: int = 0) -> Receipt:
        """A worker's outcomes, and the tasks it began running since its last report.

        Answered at once with a ``Receipt``: the worker keeps the results until one says
        the journal has them. ``resent``: results a master of another run took (this one
        restored their tasks): only those still at the attempt they ran count. With nothing
        to report, ``durable_to`` waits (bounded) until the journal reaches that ticket."""
        with self._lock:
            self._heard_from(worker_id)
            if not results and not started:
                journal = self._journal
                if durable_to and journal is not None:
                    self._wait(self._synced, lambda: journal.durable >= durable_to,
                               LONG_POLL_S)
                return self._receipt(0)
            results = self._reportable(worker_id, results, resent)
            pending_before = self._state.pending_count()
            waiting = self._state.queues.waiting_count
            self._state.start(worker_id, started or (), self._clock())
            self._state.complete(worker_id, results, self._clock())
            if self._state.queues.waiting_count > waiting:  # a retry waits for its backoff
                self._wake_timer()
            requeued = self._state.pending_count() - pending_before
            ticket = self._commit()
            if started:
                self._results.notify_all()
            if self._state.limits.by_queue or self._state.limits.running_by_key:
                self._takers.wake_all()  # a limit may have room again
            elif requeued > 0:
                self._takers.wake(requeued)
            if results:  # room in its pool: its poll leases more at once
                self._takers.wake_workers([worker_id])
            return self._receipt(ticket)

    def _reportable(self, worker_id: str, results: list[ResultMsg],
                    resent: bool) -> list[ResultMsg]:
        """The results this worker may report (lock held); the rest are logged, dropped."""
        results, refused = self._state.reportable(worker_id, results, resent=resent)
        if refused and resent:
            log.info("resent_results_known", worker_id=worker_id, tasks=len(refused),
                     reason="journaled before the master restarted")
        elif refused:
            log.warning("report_refused", worker_id=worker_id, tasks=len(refused),
                        reason="not leased to this worker")
        return results

    def beat(self, worker_id: str, beat: Beat) -> Beaten:
        """A worker lives: it says what it holds (a digest), what runs, its memory and its
        tasks' progress. Answers when to beat next (0: register again), and whether to send
        the list of what it holds (the digest differs from the master's)."""
        check_beat(beat)
        with self._lock:
            state = self._state
            _, send_held = state.beaten(worker_id, beat, self._clock())
            worker = state.workers.get(worker_id)
            return Beaten(beat=state.beat(worker) if worker is not None else 0.0,
                          send_held=send_held, drain=state.drain_told(worker_id))

    def release(self, worker_id: str, task_ids: list[str], *, goodbye: bool = False) -> None:
        """A worker hands back unstarted tasks; with goodbye it leaves the cluster."""
        with self._lock:
            self._state.release(worker_id, task_ids)
            if goodbye:
                self._state.forget_worker(worker_id)
            self._commit()
            self._takers.wake_all()
        if goodbye:
            log.info("worker_left", worker_id=worker_id, released=len(task_ids))
