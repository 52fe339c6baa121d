"""What workers say of themselves, as part of ``BrokerState``: joining, beats and the
list of what each holds, and when its leases run out; leaving and being lost (``expire``);
and, after a restart, the claim window in which a restored lease waits for its holder.

    register(info) ── crowd (a deadline each: silence) ── beat interval told (flat beat rate)
    heard_from     ── any call (a poll, a report): as a beat; the connection a poll comes on
    hung_up(link)  ── that connection ended: lost after lost_after, not LOST_BEATS beats,
                      unless it is heard from again (joins again); another one's end: nothing
    beaten(beat)   ── digest matches: every lease of the worker renewed (lease_expires)
                   └─ differs: the worker sends its list ──► heartbeat(held):
                        a held task thought queued is leased back to it; a lease it did not
                        list is renewed no more (unconfirmed); its claims are settled
    take(received) ── arrived: a batch that never reached it goes back at once
    release / forget_worker ── a stopping worker hands back what it never started, leaves
    expire(now)    ── silent workers lost; leases past their deadline queued again (or
                      ended: stopped, cancel asked, lost by max_lost workers)

    restore_task(holder) ── claims[holder] ── open_claims(until) once the master listens
                                           └─ claims_settled(worker) when it has listed
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq.defaults import HEARTBEAT_S, LOST_BEATS, MAX_BEATS_PER_S, REJOINS_PER_S
from taskq.master.state.autoscale import WorkerSizes
from taskq.master.state.crowd import Crowd, Due
from taskq.master.state.queues import TaskQueues
from taskq.master.state.records import TaskRecord, WorkerInfo
from taskq.master.state.resources import Resources
from taskq.protocol.messages import Beat, ResultMsg, Status, TaskState

# restore_hold_until while a master loads its journal: the claim window starts only when it
# listens (open_claims), so loading a big journal does not eat it.
RESTORING = float(2**62)


class LivenessMixin:
    """The workers' part of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    leased: dict[str, TaskRecord]
    workers: dict[str, WorkerInfo]
    crowd: Crowd
    queues: TaskQueues
    resources: Resources
    sizes: WorkerSizes
    claims: dict[str, dict[str, float]]
    restore_hold_until: float
    lost_after: float
    stopped_away: Any

    if TYPE_CHECKING:  # from BrokerState and its other parts
        max_lost: int
        now: float
        retained: Any
        history: Any
        changes: Any
        _orphaned: list[str]
        _lease_due: Due

        def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...
        def end_stopped(self, rec: TaskRecord, detail: str) -> None: ...
        def stopped_result(self, rec: TaskRecord, detail: str) -> ResultMsg: ...
        def expire_due(self, now: float) -> int: ...
        def _unlease(self, rec: TaskRecord) -> None: ...
        def _lease_to(self, rec: TaskRecord, worker: WorkerInfo, now: float) -> None: ...
        def _ask_to_stop(self, rec: TaskRecord) -> None: ...
        def _carry_drain(self, old: WorkerInfo | None, info: WorkerInfo,
                         draining: bool) -> None: ...
        def stop_again(self, worker: WorkerInfo, task_id: str) -> None: ...
        def note_progress(self, worker_id: str, progress: dict[str, Any]) -> int: ...

    # ------------------------------------------------------------------ leaving, lost

    def release(self, worker_id: str, task_ids: list[str]) -> None:
        """A stopping worker hands back tasks it never started: queued again, no attempt used."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.draining = True
        self._hand_back(worker_id, task_ids)

    def _hand_back(self, worker_id: str, task_ids: list[str]) -> None:
        """Queue again these tasks leased to the worker, no attempt used (a stopped one
        ends)."""
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state is TaskState.LEASED and rec.worker == worker_id:
                if rec.stop_asked:
                    self._finish(rec, self.stopped_result(rec, f"worker {worker_id} stopped"))
                    continue
                self._unlease(rec)
                self.history.withdraw(task_id)
                self.queues.push(rec)

    def forget_worker(self, worker_id: str) -> None:
        """A worker said goodbye: it holds nothing any more (release first)."""
        info = self.crowd.remove(worker_id)
        if info is not None:  # what it still holds goes back at the next expire
            self._orphaned.extend(info.held)
        self.resources.forget(worker_id)

    def expire(self, now: float) -> list[str]:
        """Declare silent workers lost and requeue (or fail) leases past their deadline;
        end the tasks past their expiry deadline that no worker holds (state.expiry)."""
        self.now = now
        self.retained.expire(now)  # kept results whose TTL passed
        lost = self.crowd.overdue(now, self.silence)
        self.history.now = now
        orphans, self._orphaned = self._orphaned, []  # the leases of workers gone go at once
        for worker_id in lost:
            gone = self.workers[worker_id]
            orphans.extend(gone.held)
            gone.running, gone.held = 0, set()  # its leases are requeued below: it runs none
            self.history.worker_lost(gone)
            self.crowd.remove(worker_id)
            self.resources.forget(worker_id)
        for task_id in [*orphans, *self._lease_due.pop(now, self._lease_deadline)]:
            rec = self.leased.get(task_id)
            if rec is None or (rec.worker in self.workers and self.lease_expires(rec) >= now):
                continue  # (handed back, renewed, or a task listed twice)
            self._lease_lost(rec)
        self.expire_due(now)
        return lost

    def _lease_lost(self, rec: TaskRecord) -> None:
        """A lease whose holder is gone or silent: queued again, or ended (stopped, its
        cancel asked, or lost by too many workers)."""
        lost_worker = rec.worker or "?"
        asked = rec.cancel_asked
        if rec.stop_asked:  # it runs nowhere now: a late result finds it ended
            self.end_stopped(rec, f"worker {lost_worker} went silent; its lease expired")
            return
        self._unlease(rec)
        rec.lost += 1
        rec.lost_workers.append(lost_worker)
        if asked:  # its cancel was asked for and it is not running anywhere now
            self._finish(rec, ResultMsg(rec.msg.task_id, Status.CANCELLED,
                                        detail="cancelled before it started"))
        elif rec.lost >= self.max_lost:
            self._finish(rec, ResultMsg(rec.msg.task_id, Status.LOST, detail=(
                f"task was handed to a worker {rec.lost} times and each was lost before "
                f"it finished (workers: {', '.join(rec.lost_workers)})")))
        else:
            self.history.attempt_ended(rec, ResultMsg(
                rec.msg.task_id, Status.LOST, detail=f"worker {lost_worker} was lost"))
            self.changes.updated.append(rec)
            self.changes.leased[rec.msg.task_id] = ""  # queued again: no holder
            self.queues.push(rec)

    def _lease_deadline(self, task_id: str) -> float | None:
        rec = self.leased.get(task_id)
        return None if rec is None else self.lease_expires(rec)

    # ------------------------------------------------------------------ after a restart

    def open_claims(self, until: float) -> None:
        """The master listens: the tasks restored while it loaded that were leased (held
        until RESTORING) wait for their holders to claim them back until ``until``, then
        run; a task that was waiting anyway keeps its own time if later."""
        self.restore_hold_until = until
        for held in self.claims.values():
            for task_id, not_before in held.items():
                rec = self.tasks.get(task_id)
                if rec is not None and rec.state is TaskState.WAITING \
                        and rec.not_before >= RESTORING:
                    self.queues.remove(rec)  # its entry goes stale; then held anew
                    self.queues.hold(rec, max(until, not_before))

    def claims_settled(self, worker_id: str, now: float) -> None:
        """A worker said what it holds after a restart: the restored tasks it held before
        and did not claim back run now (it does not run them), not when the window ends."""
        for task_id, not_before in self.claims.pop(worker_id, {}).items():
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state is TaskState.WAITING and not rec.stop_asked \
                    and rec.not_before == max(self.restore_hold_until, not_before):
                self.queues.remove(rec)
                if not_before > now:
                    self.queues.hold(rec, not_before)
                else:
                    self.queues.push(rec)

    def register(self, info: WorkerInfo, now: float) -> None:
        old = self.workers.get(info.worker_id)
        if old is not None:
            info.held, info.done, info.failed = old.held, old.done, old.failed
            info.to_ask = [*old.to_ask, *old.asked]  # answers may have been lost: ask again
            info.sent = old.sent  # its next take says whether that batch arrived
            info.unconfirmed = old.unconfirmed
        self._carry_drain(old, info, info.draining)
        info.last_seen = now
        self.crowd.add(info, now + self.silence(info))
        self.resources.register(info.worker_id, info.resources)
        self.sizes.seen(info.procs, info.queues)
        self.beat(info)

    def beat(self, worker: WorkerInfo) -> float:
        """The heartbeat interval to tell a worker: HEARTBEAT_S, longer as the crowd grows so
        that all of them together beat at most MAX_BEATS_PER_S times a second."""
        worker.beat = max(HEARTBEAT_S, len(self.workers) / MAX_BEATS_PER_S)
        return worker.beat

    def silence(self, worker: WorkerInfo) -> float:
        """How long this worker may stay silent before it is lost: ``lost_after``, or
        LOST_BEATS of the heartbeat interval it was told if that is longer; but, if its
        poll's connection ended and it was not heard from since, no longer than
        ``lost_after`` after that (or the time the whole crowd needs to join again at
        REJOINS_PER_S, if longer): a killed worker is lost about as soon in a big crowd."""
        quiet = max(self.lost_after, LOST_BEATS * worker.beat)
        if worker.hung_up is not None and worker.hung_up >= worker.last_seen:
            # time to join again, were the whole crowd cut at once (a reset network)
            rejoin = max(self.lost_after, len(self.workers) / REJOINS_PER_S)
            return min(quiet, worker.hung_up - worker.last_seen + rejoin)
        return quiet

    def heard_from(self, worker_id: str, now: float,
                   link: int | None = None) -> WorkerInfo | None:
        """A call came from the worker (a poll, on connection number ``link``: see
        ``hung_up``): it is heard from, as by a beat. None if it is not known here."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.last_seen = now
            if link is not None:
                worker.link = link
        return worker

    def hung_up(self, worker_id: str, now: float, link: int) -> bool:
        """Connection number ``link`` of a worker ended: if it is the one the worker polls
        on, its process died or it reconnects (and then joins again, in time). False if the
        worker is not known here, or polls on another connection (it joined again first)."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.link != link:
            return False
        worker.hung_up = now
        self.crowd.check(worker_id, worker.last_seen + self.silence(worker))
        return True

    def heartbeat(self, worker_id: str, held: list[str], running: int, now: float,
                  memory: int = 0, progress: dict[str, Any] | None = None) -> bool:
        """Renew the worker and the leases it still holds; False if it must register again.

        A held task the master thinks is queued (it restarted, or the lease expired while
        the network was cut) is leased back to this worker rather than run twice.
        """
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_seen = now
        worker.running = running
        worker.memory = memory
        deadline = now + self.silence(worker)
        for task_id in held:
            rec = self.tasks.get(task_id)
            if rec is None:
                if self.stopped_away:
                    self.stop_again(worker, task_id)
                continue
            if rec.state is TaskState.BLOCKED:  # (never handed out)
                continue
            if rec.state is not TaskState.LEASED:
                self._unlease(rec)
                self._lease_to(rec, worker, now)
                if rec.stop_asked:  # stopped while the master was away: ask its holder now
                    self._ask_to_stop(rec)
            elif rec.worker == worker_id:
                rec.deadline = deadline
        self._listed(worker, held, now)
        if progress:
            self.note_progress(worker_id, progress)
        return True

    def _listed(self, worker: WorkerInfo, held: list[str], now: float) -> None:
        """A worker listed what it holds: the leases it did not list (nor are on their way
        to it) are renewed no more; the restored tasks it held and did not claim run."""
        worker.unconfirmed = worker.held.difference(held, worker.sent)
        if self.claims:
            self.claims_settled(worker.worker_id, now)

    def beaten(self, worker_id: str, beat: Beat, now: float) -> tuple[bool, bool]:
        """A worker's beat (``BrokerAPI.beat``): whether the worker is known here, and
        whether it must send the list of what it holds (its digest differs from ours). A
        beat that matches renews every lease of the worker at once (``lease_expires``)."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return False, False
        worker.last_seen = now
        worker.running, worker.memory = beat.running, beat.memory
        if beat.progress:
            self.note_progress(worker_id, beat.progress)
        if not self.crowd.held_matches(worker, beat.held):
            return True, True
        worker.unconfirmed.clear()
        return True, False

    def lease_expires(self, rec: TaskRecord) -> float:
        """When a lease runs out: its holder's silence after it was last heard from, for a
        lease its holder confirms holding (renewed per worker, not per task); its own
        deadline for one it did not list in its last heartbeat, or whose holder is gone."""
        holder = self.workers.get(rec.worker or "")
        if holder is None or rec.msg.task_id in holder.unconfirmed:
            return rec.deadline
        return max(rec.deadline, holder.last_seen + self.silence(holder))

    def arrived(self, worker_id: str, received: str) -> None:
        """A worker says which batch of leases reached it last: ``received``, the first
        task id of that batch ("": none yet). A batch sent to it since never arrived (the
        link broke under the reply): its tasks go back to the queue at once, no attempt
        used, rather than when their leases expire."""
        worker = self.workers.get(worker_id)
        if worker is None:
            return
        sent, worker.sent = worker.sent, []
        if sent and sent[0] != received:
            self._hand_back(worker_id, [t for t in sent if (r := self.leased.get(t))
                                        is not None and not r.started])
