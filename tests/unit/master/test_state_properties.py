"""Property tests of BrokerState: random interleavings of every call, checked after each step.

A model kept beside the state records what each submitter was told (accepted, cancelled,
results delivered and acknowledged) and what workers did (tasks they began, cancel requests
they answered); the invariants tie the two together, and at the end every remaining task is
run to completion so that each submitted task can be checked to have exactly one result.
Master restarts rebuild the state as the journal would, holding restored tasks back for
their holders to claim. A task that began running is never reported cancelled, but by a
stop (a cancel with running=True): a stopped task ends exactly once, CANCELLED, and is never
queued again (not after a lost worker, a hand-back, a retryable result or a restart). Tasks
may depend on earlier ones (live, ended, fetched or never seen): no task is leased before
all its dependencies ended OK, a dependent of one that did not never runs and ends exactly
once (DEPENDENCY_FAILED), and a kept dependency result lives exactly as long as a live
dependent needs it. A worker may report that it could not load a task (UNLOADABLE): the
task is queued again, no attempt used, never leased to that worker again, and ends
UNLOADABLE only when every connected worker of its queue (or MAX_LOAD_REFUSALS) could not.
A task may carry an expiry deadline: it is never leased past it, a reaper pass ends every
task past it that no worker holds (EXPIRED, exactly once; a retry too), but a stopped one
or one held for the worker that held it before a restart.
A task with a result_ttl (its own, or the master's default) keeps its result, fetched or
not, exactly until it ended + the TTL; then it is known as expired (until a restart); a
dependent finds such a kept result as it finds one not fetched yet.
An operator may pause a queue (nothing of it is leased, across restarts, until resumed),
purge it (every task of it no worker holds ends CANCELLED, the others are untouched) and
drain a worker (it is leased nothing more).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from taskq.defaults import MAX_LOAD_REFUSALS
from taskq.master.state import BrokerState, TaskRecord, WorkerInfo
from taskq.master.state.autoscale import desired_workers
from taskq.master.state.dead import DEAD
from taskq.master.state.history import OUTCOMES
from taskq.master.state.limits import QueueLimit
from taskq.master.state.resources import unfit as unfit_counts
from taskq.master.state.stats import Stats
from taskq.protocol.messages import (
    Beat,
    ResultMsg,
    Status,
    TaskMsg,
    TaskOptions,
    TaskState,
    held_digest,
    stop_ask,
)

LOST_AFTER = 5.0
MAX_PAYLOAD = 6
QUEUES = ("default", "gpu")
OUTBOXES = ("a", "b")
# Worker kinds and their queues; a kind that says goodbye comes back under a new id.
WORKERS: dict[str, tuple[str, ...]] = {"w0": ("default",), "w1": ("gpu",),
                                       "w2": ("default", "gpu")}
KINDS = st.sampled_from(sorted(WORKERS))
PROCS = {"w0": 1, "w1": 3, "w2": 2}  # tasks each kind runs at once
# What each kind of worker has, and what a task may need (gpu=3: no worker ever fits it).
CAPACITY: dict[str, tuple[tuple[str, float], ...]] = {"w0": (("gpu", 2.0),), "w1": (),
                                                       "w2": (("gpu", 1.0),)}
NEEDS: list[tuple[tuple[str, float], ...]] = [(), (), (("gpu", 1.0),), (("gpu", 2.0),),
                                              (("gpu", 3.0),)]
GHOST = "ghost"  # an id the master never saw
ORPHANAGE = "elsewhere-1"  # the parent of some tasks: a task of no submitter here
# Limit keys a task may carry (each key always with the same limit).
LIMIT_KEYS: list[dict[str, object]] = [{}, {}, {"limit_key": "k1", "limit": 1},
                                       {"limit_key": "k2", "limit": 2}]
EMPTY = WorkerInfo("nobody", "host", 0, 0)
EXPIRES = [0.0, 0.0, 0.0, 1.0, 2.0, 7.0]  # a task's expires (0: none)

RecView = tuple[TaskState, str | None, float, int, int]


class BrokerMachine(RuleBasedStateMachine):
    """Drives one BrokerState with every call a master serves, on a clock of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.max_lost = 2
        self.state = self.new_state()
        self.generation = dict.fromkeys(WORKERS, 0)
        self.now = 0.0
        self.ids = itertools.count()
        self.bodies = itertools.count()
        self.submitted: dict[str, TaskMsg] = {}
        self.cancelled: set[str] = set()
        self.acked: set[str] = set()
        self.delivered: dict[str, ResultMsg] = {}  # first delivery of each id, any session
        self.session: dict[str, set[str]] = {box: set() for box in OUTBOXES}
        self.began: set[str] = set()  # tasks a worker began running under their lease
        self.rates: dict[str, tuple[float, float, int]] = {}  # queue -> (since, rate, leased)
        self.told_started: set[str] = set()
        self.sizes: dict[str, int] = {}  # queue -> size of the last worker that joined it
        self.ever_leased: set[str] = set()
        self.stopped: set[str] = set()  # tasks a stop was asked for (and told as stopping)
        self.journaled_stops: set[str] = set()  # stops journaled by earlier lives of the master
        self.reported: list[ResultMsg] = []  # results taken, with the attempt they ended
        self.refused: dict[str, set[str]] = {}  # live task -> workers that could not load it
        self.paused: set[str] = set()  # queues an operator paused
        self.settled = True  # False while a step runs; teardown only drains a clean run
        self.default_ttl = 0.0  # the master's --result-ttl
        self.ended_at: dict[str, float] = {}  # task with a TTL -> the state's time it ended
        self.results_expired: set[str] = set()  # kept results that expired in this life
        self.kept_seen: set[str] = set()  # ids kept at the last step

    @initialize(max_lost=st.integers(1, 3), default_ttl=st.sampled_from([0.0, 0.0, 4.0]))
    def configure(self, max_lost: int, default_ttl: float) -> None:
        self.max_lost = max_lost
        self.default_ttl = default_ttl
        self.state = self.new_state()

    # ------------------------------------------------------------------ helpers

    def new_state(self) -> BrokerState:
        state = BrokerState(lost_after=LOST_AFTER, max_lost=self.max_lost,
                            max_payload=MAX_PAYLOAD)
        state.result_ttl = getattr(self, "default_ttl", 0.0)
        state.now = getattr(self, "now", 0.0)  # as the broker sets it: its clock at start
        return state

    def ttl_of(self, task_id: str) -> float:
        ttl = self.submitted[task_id].options.result_ttl
        return self.default_ttl if ttl is None else ttl

    def worker_id(self, kind: str) -> str:
        return f"{kind}.{self.generation[kind]}"

    def join(self, kind: str) -> str:
        worker = self.worker_id(kind)
        self.state.register(WorkerInfo(worker, "host", 1, PROCS[kind], WORKERS[kind],
                                       resources=CAPACITY[kind]), self.now)
        self.sizes.update(dict.fromkeys(WORKERS[kind], PROCS[kind]))
        return worker

    def pick(self, data: st.DataObject, pool: list[str], focus: list[str] | None = None,
             max_size: int = 3) -> list[str]:
        """A few ids from pool, drawn more often from focus (the ids a step acts on)."""
        sources = [st.sampled_from(sorted(ids)) for ids in (focus, pool) if ids]
        if not sources:
            return []
        return data.draw(st.lists(st.one_of(*sources), max_size=max_size))

    def known_ids(self) -> list[str]:
        return [*self.submitted, GHOST]

    def view(self) -> dict[str, RecView]:
        return {tid: (r.state, r.worker, r.deadline, r.lost, r.errors)
                for tid, r in self.state.tasks.items()}

    def result_of(self, task_id: str) -> ResultMsg | None:
        box = self.state.outboxes.get(self.submitted[task_id].outbox)
        return box.results.get(task_id) if box is not None else None

    def new_body(self) -> bytes:
        return str(next(self.bodies)).encode()

    # ------------------------------------------------------------------ submitters

    @rule(data=st.data(), n=st.integers(0, 3), duplicate=st.booleans())
    def submit(self, data: st.DataObject, n: int, duplicate: bool) -> None:
        self.settled = False
        fresh = [self.new_task(data) for _ in range(n)]
        open_ids = [t for t in self.submitted if t not in self.acked]
        again = [self.submitted[t] for t in self.pick(data, open_ids)]
        batch = fresh + again + (fresh[:1] if duplicate else [])
        before = self.view()
        results_before = {t: self.result_of(t) for t in self.submitted}

        accepted = self.state.submit(batch, self.now)

        assert accepted == sum(m.size <= MAX_PAYLOAD for m in fresh)
        for msg in fresh:
            self.submitted[msg.task_id] = msg
            self.check_new(msg)
        after = self.view()
        for tid, rec_view in before.items():
            if tid in after:
                assert after[tid] == rec_view
        for tid, result in results_before.items():
            if result is not None:
                assert self.result_of(tid) is result

    def new_task(self, data: st.DataObject) -> TaskMsg:
        box = data.draw(st.sampled_from(OUTBOXES))
        source = data.draw(st.sampled_from(["none", "none", "live", "live", "kept", "any"]))
        pool = {"live": list(self.state.tasks), "kept": [*self.state.deps.kept, GHOST]
                }.get(source) or self.known_ids()
        deps = tuple(self.pick(data, pool, max_size=2)) if source != "none" else ()
        return TaskMsg(f"{box}-t{next(self.ids)}", box, b"f",
                         b"x" * data.draw(st.sampled_from([1, 1, 2, 5, 9])),
                         TaskOptions(retries=data.draw(st.integers(0, 2)),
                                     priority=data.draw(st.integers(0, 2)),
                                     queue=data.draw(st.sampled_from(QUEUES)),
                                     backoff=data.draw(st.sampled_from([0.0, 0.0, 1.0])),
                                     jitter=False,
                                     run_at=data.draw(st.sampled_from(
                                         [0.0, 0.0, self.now + 2.0])),
                                     resources=data.draw(st.sampled_from(NEEDS)),
                                     # a parent that never ends here: the children index
                                     # is checked under every call, no stop cascades
                                     parent=data.draw(st.sampled_from(["", "", ORPHANAGE])),
                                     expires=data.draw(st.sampled_from(EXPIRES)),
                                     result_ttl=data.draw(st.sampled_from(
                                         [None, None, None, 0.0, 3.0, 30.0])),
                                     **data.draw(st.sampled_from(LIMIT_KEYS))),
                         deps=deps)

    def dep_outcome(self, dep: str) -> Status | None:
        """How a dependency stands for a new dependent: None while it lives, OK if its
        result is kept or waits in its outbox, else how it ended (REFUSED: unknown)."""
        if dep in self.state.tasks or dep in self.state.deps.kept:
            return None if dep in self.state.tasks else Status.OK
        result = self.result_of(dep) if dep in self.submitted else None
        if result is None and self.kept_by_ttl(dep):
            result = self.state.retained.results[dep]
        return Status.REFUSED if result is None else result.status

    def kept_by_ttl(self, task_id: str) -> bool:
        """Is this task's result kept for its TTL now (by the model's clock of its end)?"""
        ended = self.ended_at.get(task_id)
        return ended is not None and self.state.now < ended + self.ttl_of(task_id)

    def check_new(self, msg: TaskMsg) -> None:
        """A new task is refused (too large), failed by a dependency, blocked on the live
        ones, or queued (waiting for its time)."""
        result = self.result_of(msg.task_id)
        if msg.size > MAX_PAYLOAD:
            assert result is not None and result.status is Status.REFUSED
            return
        rec = self.state.tasks.get(msg.task_id)
        if rec is None:
            assert result is not None and result.status is Status.DEPENDENCY_FAILED
            return
        if any(d in self.state.tasks for d in msg.deps):
            assert rec.state is TaskState.BLOCKED
            return
        delayed = msg.options.run_at > self.now
        assert rec.state is (TaskState.WAITING if delayed else TaskState.PENDING)

    @rule(data=st.data(), box=st.sampled_from(OUTBOXES), max_n=st.integers(0, 3))
    def fetch(self, data: st.DataObject, box: str, max_n: int) -> None:
        self.settled = False
        unacked = [t for t in self.delivered
                   if t not in self.acked and self.submitted[t].outbox == box]
        ack = self.pick(data, unacked)
        for tid in ack:
            assert self.result_of(tid) is not None  # delivered, not acknowledged: still kept
        outbox = self.state.outboxes.get(box)
        unsent = ([t for t in outbox.results if t not in outbox.sent and t not in ack]
                  if outbox is not None else [])

        fetched = self.state.fetch(box, ack, max_n)
        got = fetched.results

        self.acked.update(ack)
        for tid in fetched.started:
            assert self.submitted[tid].outbox == box and tid in self.began
        self.told_started.update(fetched.started)
        for tid, value in fetched.progress.items():
            rec = self.state.leased[tid]
            assert rec.msg.outbox == box and tuple(rec.progress) == value
        assert [r.task_id for r in got] == unsent[:max_n]
        for result in got:
            assert result.task_id not in self.session[box], "delivered twice in one session"
            assert self.delivered.setdefault(result.task_id, result) is result
            self.session[box].add(result.task_id)
        for tid in ack:
            assert self.result_of(tid) is None

    @rule(box=st.sampled_from(OUTBOXES))
    def resend(self, box: str) -> None:
        self.settled = False
        self.state.resend(box)
        self.session[box].clear()

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.settled = False
        leased_first = data.draw(st.booleans())
        focus = list(self.state.leased) if leased_first else list(self.state.tasks)
        wanted = self.pick(data, self.known_ids(), focus or list(self.state.tasks))
        expected: dict[str, list[str]] = {"cancelled": [], "running": [], "unknown": [],
                                          "asked": []}
        gone: set[str] = set()
        for tid in wanted:
            rec = self.state.tasks.get(tid)
            if rec is None or tid in gone:
                expected["unknown"].append(tid)
            elif rec.state is not TaskState.LEASED:
                expected["cancelled"].append(tid)
                gone.add(tid)
                gone |= self.failing_with(tid)  # they end DEPENDENCY_FAILED with it
            elif rec.started:
                expected["running"].append(tid)
            else:
                expected["asked"].append(tid)

        out = self.state.cancel(wanted)

        assert (out.cancelled, out.running, out.unknown, out.asked) == (
            expected["cancelled"], expected["running"], expected["unknown"], expected["asked"])
        self.cancelled.update(out.cancelled)
        for tid in out.cancelled:
            result = self.result_of(tid)
            assert result is not None and result.status is Status.CANCELLED
        for tid in out.asked:
            rec = self.state.tasks[tid]
            assert rec.cancel_asked and rec.state is TaskState.LEASED

    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        """A cancel with running=True: queued tasks end at once, leased or running ones
        (and restored ones their holder may still run) are asked of their worker."""
        self.settled = False
        focus = list(self.state.leased) or list(self.state.tasks)
        wanted = self.pick(data, self.known_ids(), focus)
        expected: dict[str, list[str]] = {"cancelled": [], "stopping": [], "other": []}
        gone: set[str] = set()
        for tid in wanted:
            rec = self.state.tasks.get(tid)
            if rec is None or tid in gone:
                expected["other"].append(tid)
            elif rec.state is TaskState.LEASED or rec.stop_asked or (
                    rec.state is TaskState.WAITING and rec.queued_at == 0.0
                    and self.now < self.state.restore_hold_until):
                expected["stopping"].append(tid)
            else:
                expected["cancelled"].append(tid)
                gone.add(tid)
                gone |= self.failing_with(tid)  # they end DEPENDENCY_FAILED with it

        out = self.state.stop(wanted, self.now)

        assert out.cancelled == expected["cancelled"]
        assert out.stopping == expected["stopping"]
        assert set(out.unknown) | set(out.ended) == set(expected["other"])
        assert not set(out.unknown) & set(out.ended)
        for tid in out.ended:
            assert self.result_of(tid) is not None or tid in self.acked
        self.cancelled.update(out.cancelled)
        self.stopped.update(out.stopping)
        for tid in out.stopping:
            rec = self.state.tasks[tid]
            assert rec.stop_asked  # and journaled:
            assert tid in self.state.changes.stops or tid in self.journaled_stops
            if rec.state is TaskState.LEASED and rec.worker in self.state.workers:
                info = self.state.workers[rec.worker]
                assert stop_ask(tid) in info.to_ask or stop_ask(tid) in info.asked

    def failing_with(self, tid: str) -> set[str]:
        """The blocked tasks that end when ``tid`` ends other than OK (transitively)."""
        out: set[str] = set()
        frontier = {tid}
        while frontier:
            frontier = {t for t, r in self.state.tasks.items() if r.state is TaskState.BLOCKED
                        and t not in out and frontier & set(r.msg.deps)}
            out |= frontier
        return out

    # ------------------------------------------------------------------ workers

    @rule(kind=KINDS)
    def register(self, kind: str) -> None:
        self.settled = False
        old = self.state.workers.get(self.worker_id(kind))
        held = set(old.held) if old is not None else set()
        worker = self.join(kind)
        assert self.state.workers[worker].held == held
        assert self.state.workers[worker].last_seen == self.now

    def holding(self) -> list[str]:
        return [k for k in WORKERS if self.state.workers.get(self.worker_id(k), EMPTY).held]

    @precondition(lambda self: self.holding())
    @rule(data=st.data())
    def goodbye(self, data: st.DataObject) -> None:
        """A worker that holds tasks releases some of them and leaves; the rest expire."""
        self.settled = False
        kind = data.draw(st.sampled_from(self.holding()))
        worker = self.worker_id(kind)
        held = self.state.workers[worker].held
        back = self.pick(data, sorted(held), max_size=len(held) - 1)
        kept = held - set(back)

        self.state.release(worker, back)
        self.state.forget_worker(worker)
        self.generation[kind] += 1

        assert worker not in self.state.workers
        for tid in back:
            if tid in self.stopped:  # a stopped task handed back ends there
                assert tid not in self.state.tasks
            else:
                assert self.state.tasks[tid].state is TaskState.PENDING
        for tid in kept:
            assert self.state.leased[tid].worker == worker

    @rule(kind=KINDS, n=st.integers(0, 4), join=st.booleans(), dt=st.sampled_from([0.0, 1.0]))
    def lease(self, kind: str, n: int, join: bool, dt: float) -> None:
        self.settled = False
        self.now += dt
        worker = self.join(kind) if join else self.worker_id(kind)
        info = self.state.workers.get(worker)
        expected: list[str] = []
        pending: list[TaskRecord] = []
        if info is not None and not info.draining:  # a stopping worker is leased nothing
            pending = [r for r in self.state.tasks.values()
                       if r.state is TaskState.PENDING and r.msg.options.queue in info.queues
                       and r.msg.options.queue not in self.paused
                       and worker not in self.refused.get(r.msg.task_id, ())]
            pending.sort(key=lambda r: (-r.msg.options.priority, r.seq))
            # a task past its deadline is popped and ends EXPIRED: it takes no place
            expected = self.within_limits([r for r in pending if not self.past(r)], n,
                                          worker)

        rated = info is not None and any(q in self.rates for q in info.queues)

        past = [r.msg.task_id for r in pending if self.past(r)]
        got = self.state.lease(worker, n, self.now)
        self.ever_leased.update(m.task_id for m in got)
        for msg in got:  # never handed out past its deadline
            assert not msg.options.expires_at or msg.options.expires_at > self.now
        for tid in past:  # still queued (not reached), or ended EXPIRED
            result = self.result_of(tid)
            assert tid in self.state.tasks or (result is not None
                                               and result.status is Status.EXPIRED)
        for msg in got:  # never to a worker that could not load it, nor from a paused queue
            assert worker not in self.refused.get(msg.task_id, ())
            assert msg.options.queue not in self.paused
        for msg in got:  # every dependency ended OK, and its result goes with the task
            assert [d for d, _ in msg.inputs] == list(dict.fromkeys(msg.deps))
            for dep, body in msg.inputs:
                assert self.state.deps.kept[dep].result.status is Status.OK
                assert body == self.state.deps.kept[dep].result.body

        if rated:  # the exact choice depends on the buckets: check the budgets instead
            assert {m.task_id for m in got} <= {r.msg.task_id for r in pending}
            self.spend_budgets(got)
        else:
            assert [m.task_id for m in got] == expected
        for msg in got:
            rec = self.state.tasks[msg.task_id]
            assert (rec.state, rec.worker) == (TaskState.LEASED, worker)
            assert rec.deadline == self.now + LOST_AFTER
            assert msg.attempt == rec.lost + rec.errors

    def past(self, rec: TaskRecord) -> bool:
        """Is the task past its expiry deadline (the state's clock is the wall clock)?"""
        return bool(rec.msg.options.expires_at) and self.now >= rec.msg.options.expires_at

    def expiring(self) -> set[str]:
        """The tasks the next reaper pass ends EXPIRED: past their deadline, with no worker
        (a stopped one ends CANCELLED; one held for its old holder waits for its hold)."""
        claimed = {t for held in self.state.claims.values() for t in held}
        return {tid for tid, rec in self.state.tasks.items()
                if rec.msg.options.expires_at and rec.state is not TaskState.LEASED
                and not rec.stop_asked
                and max(rec.msg.options.expires_at,
                        rec.not_before if tid in claimed else 0.0) < self.now}

    def within_limits(self, pending: list[TaskRecord], n: int, worker: str) -> list[str]:
        """The tasks a lease of n should take: best first, skipping any whose queue or key
        is at its limit, or whose needs the worker has not free (never blocking the ones
        behind it)."""
        limits = self.state.limits
        by_queue = Counter(limits.running_by_queue)
        by_key = Counter(limits.running_by_key)
        capacity = dict(self.state.workers[worker].resources)
        used = self.resources_held_by(worker)
        out: list[str] = []
        for rec in pending:
            options = rec.msg.options
            cap = limits.by_queue.get(options.queue)
            if len(out) == n or (cap is not None and by_queue[options.queue] >= cap.concurrency):
                continue
            if options.limit_key and by_key[options.limit_key] >= options.limit:
                continue
            if any(capacity.get(name, 0.0) - used[name] < amount
                   for name, amount in options.resources):
                continue
            for name, amount in options.resources:
                used[name] += amount
            out.append(rec.msg.task_id)
            by_queue[options.queue] += 1
            by_key[options.limit_key] += 1
        return out

    @rule(queue=st.sampled_from(QUEUES), concurrency=st.sampled_from([0, 1, 2]))
    def set_concurrency(self, queue: str, concurrency: int) -> None:
        self.settled = False
        self.state.limits.set(queue, QueueLimit(concurrency=concurrency))
        self.rates.pop(queue, None)
        assert (queue in self.state.limits.by_queue) == bool(concurrency)

    @rule(queue=st.sampled_from(QUEUES), rate=st.sampled_from([0.5, 2.0]))
    def set_rate(self, queue: str, rate: float) -> None:
        """A rate limit: from now on, at most a second's worth of tasks at once and then
        ``rate`` a second may be leased from the queue."""
        self.settled = False
        self.state.limits.set(queue, QueueLimit(rate=rate))
        self.rates[queue] = (self.now, rate, 0)

    def known_queue(self, queue: str) -> bool:
        """A queue with tasks, a worker serving it, limits or a pause (state.controls)."""
        return queue in self.paused or queue in self.state.limits.by_queue or any(
            queue in w.queues for w in self.state.workers.values()) or any(
            r.msg.options.queue == queue for r in self.state.tasks.values())

    @rule(queue=st.sampled_from([*QUEUES, *QUEUES, "nowhere"]),
          paused=st.sampled_from([True, True, False]))
    def pause(self, queue: str, paused: bool) -> None:
        self.settled = False
        known = self.known_queue(queue)
        was = queue in self.paused

        changed = self.state.pause_queue(queue, paused)

        if not known:
            assert changed is None and queue not in self.state.limits.paused
            return
        assert changed is (was != paused)
        (self.paused.add if paused else self.paused.discard)(queue)
        if changed:
            assert self.state.changes.paused[-1] == (queue, paused)  # journaled
        queued = any(r.state is TaskState.PENDING and r.msg.options.queue == queue
                     for r in self.state.tasks.values())
        if paused and queued:  # no lease would take one of its tasks
            assert not self.state.can_lease((queue,), self.now)

    @rule(queue=st.sampled_from([*QUEUES, "nowhere"]))
    def purge(self, queue: str) -> None:
        """Every task of the queue that no worker holds ends CANCELLED (its dependents
        with it); no other task changes."""
        self.settled = False
        known = self.known_queue(queue)
        doomed = {t for t, r in self.state.tasks.items() if r.msg.options.queue == queue
                  and r.state in (TaskState.PENDING, TaskState.WAITING) and not r.stop_asked
                  and not (r.state is TaskState.WAITING and r.queued_at == 0.0
                           and self.now < self.state.restore_hold_until)}
        dependents = set().union(*(self.failing_with(t) for t in doomed)) - doomed
        before = self.view()

        purged = self.state.purge_queue(queue, self.now)

        if not known:
            assert purged is None and self.view() == before
            return
        assert purged is not None and set(purged) == doomed and len(purged) == len(doomed)
        self.cancelled.update(purged)
        for tid in purged:
            result = self.result_of(tid)
            assert result is not None and result.status is Status.CANCELLED
        for tid in dependents:
            result = self.result_of(tid)
            assert result is not None and result.status is Status.DEPENDENCY_FAILED
        after = self.view()
        assert set(before) - set(after) == doomed | dependents
        assert all(after[t] == v for t, v in before.items() if t in after)

    @rule(kind=KINDS)
    def drain_worker(self, kind: str) -> None:
        """An operator drains a worker: it is leased nothing more, and told so."""
        self.settled = False
        worker = self.worker_id(kind)
        known = worker in self.state.workers
        assert self.state.drain_worker(worker) is known
        if known:
            assert self.state.lease(worker, 10, self.now) == []
            assert self.state.drain_told(worker)

    def spend_budgets(self, got: list[TaskMsg]) -> None:
        for msg in got:
            queue = msg.options.queue
            if queue in self.rates:
                since, rate, used = self.rates[queue]
                self.rates[queue] = (since, rate, used + 1)
        for queue, (since, rate, used) in self.rates.items():
            assert used <= max(rate, 1.0) + rate * (self.now - since) + 1e-9, queue

    @rule(data=st.data(), kind=KINDS, dt=st.sampled_from([0.0, 1.0]))
    def heartbeat(self, data: st.DataObject, kind: str, dt: float) -> None:
        self.settled = False
        self.now += dt
        worker = self.worker_id(kind)
        held = self.pick(data, self.known_ids(), list(self.state.tasks))
        before = self.view()
        registered = worker in self.state.workers

        memory = data.draw(st.integers(0, 2**40), label="memory")
        progress = {t: (float(i), data.draw(st.sampled_from([None, 10.0, 1.0])), "m")
                    for i, t in enumerate(self.pick(data, self.known_ids(), held))}
        answer = self.state.heartbeat(worker, held, len(held), self.now, memory, progress)

        assert answer is registered
        if registered:
            assert self.state.workers[worker].memory == memory
        if not registered:
            assert self.view() == before
            return
        after = self.view()
        for tid in set(held) & set(before):
            state, holder, *_ = before[tid]
            if state in (TaskState.PENDING, TaskState.WAITING) or holder == worker:
                assert after[tid][:3] == (TaskState.LEASED, worker, self.now + LOST_AFTER)
                if self.state.tasks[tid].stop_asked:  # claimed back: its holder is asked
                    info = self.state.workers[worker]
                    assert stop_ask(tid) in info.to_ask or stop_ask(tid) in info.asked
            else:
                assert after[tid] == before[tid]
        info = self.state.workers[worker]
        leases = {t for t, r in self.state.leased.items() if r.worker == worker}
        assert info.unconfirmed == leases - set(held) - set(info.sent)
        for tid, value in progress.items():
            rec = self.state.leased.get(tid)
            total = value[1]
            valid = total is None or total >= value[0]
            if rec is not None and rec.worker == worker and valid:
                assert tuple(rec.progress) == value

    def expires(self, rec: TaskRecord) -> float:
        """A lease runs out at its own deadline, or later, at its holder's silence after it
        was last heard from, unless its holder did not list it in its last heartbeat."""
        holder = self.state.workers.get(rec.worker or "")
        if holder is None or rec.msg.task_id in holder.unconfirmed:
            return rec.deadline
        return max(rec.deadline, holder.last_seen + self.state.silence(holder))

    @rule(data=st.data(), kind=KINDS, dt=st.sampled_from([0.0, 1.0]), exact=st.booleans())
    def beat(self, data: st.DataObject, kind: str, dt: float, exact: bool) -> None:
        """A worker's beat: a digest of what it holds (exactly its leases, or another set)."""
        self.settled = False
        self.now += dt
        worker = self.worker_id(kind)
        info = self.state.workers.get(worker)
        leases = {t for t, r in self.state.leased.items() if r.worker == worker}
        held = leases if exact else set(self.pick(data, self.known_ids(), list(leases)))
        before = self.view()

        known, send_held = self.state.beaten(
            worker, Beat(held=held_digest(held), running=len(held)), self.now)

        assert known is (info is not None)
        assert self.view() == before  # a beat moves no task
        if info is None:
            assert not send_held
            return
        assert info.last_seen == self.now
        in_transit = leases - set(info.sent)
        assert send_held is not (held == leases or (bool(info.sent) and held == in_transit))
        if not send_held:
            assert not info.unconfirmed

    @rule(data=st.data(), kind=KINDS, old=st.booleans())
    def complete(self, data: st.DataObject, kind: str, old: bool) -> None:
        """Results from a worker, or from one of its earlier lives that already left."""
        self.settled = False
        worker = f"{kind}.{self.generation[kind] - 1}" if old else self.worker_id(kind)
        targets = self.pick(data, self.known_ids(), list(self.state.leased)) or [GHOST]
        # a blocked task was never handed out: the master refuses reports of it (reportable)
        targets = [t for t in targets if (r := self.state.tasks.get(t)) is None
                   or r.state is not TaskState.BLOCKED] or [GHOST]
        statuses = data.draw(st.lists(
            st.sampled_from([Status.OK, Status.ERROR, Status.ERROR, Status.TIMEOUT,
                             Status.EXPIRED]),
            min_size=len(targets), max_size=len(targets)))
        results = [ResultMsg(tid, status, self.new_body())
                   for tid, status in zip(targets, statuses, strict=True)]
        errors, ended, stopped = self.expected_ends(results)
        before = self.view()
        results_before = {t: self.result_of(t) for t in self.submitted}
        self.reported += [replace(r, attempt=rec.lost + rec.errors) for r in results
                          if (rec := self.state.tasks.get(r.task_id)) is not None]

        self.state.complete(worker, results, self.now)

        for tid, result in ended.items():
            assert tid not in self.state.tasks
            assert self.result_of(tid) is result
        for tid in stopped:
            result = self.result_of(tid)
            assert tid not in self.state.tasks
            assert result is not None and result.status is Status.CANCELLED
        for tid, count in errors.items():
            rec = self.state.tasks[tid]
            assert rec.errors == count
            if count > before[tid][4]:  # retried: queued, or waiting for its backoff
                backoff = self.submitted[tid].options.backoff
                assert rec.state is (TaskState.WAITING if backoff else TaskState.PENDING)
                if backoff:
                    assert rec.not_before == self.now + backoff * 2 ** (count - 1)
        for tid, result in results_before.items():
            if tid not in ended and tid not in stopped:
                now = self.result_of(tid)
                assert now is result or (result is None and now is not None
                                         and now.status is Status.DEPENDENCY_FAILED)

    @rule(data=st.data(), kind=KINDS, old=st.booleans(), holder=st.integers(0, 3))
    def could_not_load(self, data: st.DataObject, kind: str, old: bool, holder: int) -> None:
        """A worker (or an earlier life of it) could not load some tasks: one it holds goes
        back in line, no attempt used, or ends UNLOADABLE when no connected worker of its
        queue is left to try; one it does not hold stays where it is, the refusal noted.
        Mostly a worker says it of tasks it was just leased (``holder``), as a real one
        would."""
        self.settled = False
        worker = f"{kind}.{self.generation[kind] - 1}" if old else self.worker_id(kind)
        first: list[str] = []
        if holder and not old:
            got = self.state.lease(self.join(kind), holder, self.now)
            self.ever_leased.update(m.task_id for m in got)
            self.spend_budgets(got)
            first = [m.task_id for m in got]
            assert not {worker} & set().union(*(self.refused.get(t, set()) for t in first))
        targets = [t for t in first + self.pick(data, self.known_ids(), list(self.state.leased))
                   if (r := self.state.tasks.get(t)) is None
                   or r.state is not TaskState.BLOCKED] or [GHOST]
        results = [ResultMsg(t, Status.UNLOADABLE, b"", "could not import m: gone\ntb")
                   for t in targets]
        before = self.view()
        expected = self.expected_refusals(worker, targets)

        self.state.complete(worker, results, self.now)

        for tid, outcome in expected.items():
            rec = self.state.tasks.get(tid)
            if outcome in (Status.UNLOADABLE, Status.CANCELLED):
                result = self.result_of(tid)
                assert rec is None and result is not None and result.status is outcome
                if outcome is Status.UNLOADABLE:
                    assert f"worker {worker} could not import m: gone" in result.detail
                self.refused.pop(tid, None)
                continue
            assert rec is not None and rec.refused_by is not None
            assert set(rec.refused_by) == self.refused[tid]
            if outcome is TaskState.PENDING:  # in line again, no attempt used
                assert rec.state is TaskState.PENDING
                assert (rec.lost, rec.errors) == before[tid][3:]
            else:  # not its holder: where it was
                assert self.view()[tid] == before[tid]
        if holder and not old:  # its next lease skips them, and takes what is behind them
            pending = {t for t, r in self.state.tasks.items() if r.state is TaskState.PENDING}
            again = self.state.lease(worker, 3, self.now)
            self.ever_leased.update(m.task_id for m in again)
            self.spend_budgets(again)
            for msg in again:
                assert msg.task_id in pending and worker not in self.refused.get(msg.task_id, ())

    def expected_refusals(self, worker: str, targets: list[str]) -> dict[str, object]:
        """How each target stands after ``worker`` said it could not load it (in order):
        PENDING, unchanged (LEASED to another, or WAITING), UNLOADABLE or CANCELLED."""
        out: dict[str, object] = {}
        holder = {t: r.worker for t, r in self.state.leased.items()}
        for tid in targets:
            rec = self.state.tasks.get(tid)
            if rec is None or out.get(tid) in (Status.UNLOADABLE, Status.CANCELLED):
                continue
            if rec.stop_asked:  # whatever it reports, a stopped task ends CANCELLED
                out[tid] = Status.CANCELLED
                continue
            refused = self.refused.setdefault(tid, set())
            refused.add(worker)
            if holder.get(tid) != worker:
                out.setdefault(tid, rec.state)
                continue
            holder.pop(tid)
            queue = rec.msg.options.queue
            serving = [w for w, i in self.state.workers.items() if queue in i.queues]
            out[tid] = Status.UNLOADABLE if len(refused) >= MAX_LOAD_REFUSALS or all(
                w in refused for w in serving) else TaskState.PENDING
        return out

    @rule(data=st.data(), kind=KINDS)
    def resend_results(self, data: st.DataObject, kind: str) -> None:
        """A worker re-sends results an earlier master took (it rejoined a restarted one):
        each was taken already, so none counts again, whatever happened since."""
        if not self.reported:
            return
        again = data.draw(st.lists(st.sampled_from(self.reported), max_size=3))
        mine, refused = self.state.reportable(self.worker_id(kind), again, resent=True)
        assert mine == [] and refused == again

    def expected_ends(self, results: list[ResultMsg],
                      ) -> tuple[dict[str, int], dict[str, ResultMsg], set[str]]:
        """What results should do: the error counts of the tasks still open, the results
        that end tasks, and the stopped tasks they end (CANCELLED, whatever they say)."""
        errors = {tid: rec.errors for tid, rec in self.state.tasks.items()
                  if rec.state is not TaskState.BLOCKED}  # never handed out: ignored
        ended: dict[str, ResultMsg] = {}
        stopped: set[str] = set()
        for result in results:
            tid = result.task_id
            if tid not in errors:
                continue
            if self.state.tasks[tid].stop_asked:  # whatever it reports, it ends CANCELLED
                del errors[tid]
                stopped.add(tid)
                continue
            if (result.status is Status.ERROR
                    and errors[tid] < self.submitted[tid].options.retries):
                errors[tid] += 1
                continue
            del errors[tid]
            ended[tid] = result
        return errors, ended, stopped

    @rule(data=st.data(), kind=KINDS)
    def start(self, data: st.DataObject, kind: str) -> None:
        """A worker says which of its tasks began (and names some it does not hold)."""
        self.settled = False
        worker = self.worker_id(kind)
        began = self.pick(data, self.known_ids(), list(self.state.leased))
        mine = {t for t in began if t in self.state.leased
                and self.state.leased[t].worker == worker}

        self.state.start(worker, began)

        self.began.update(mine)
        for tid in mine:
            rec = self.state.tasks[tid]
            assert rec.started and not rec.cancel_asked
            assert tid in self.state.outboxes[rec.msg.outbox].running

    @rule(data=st.data(), kind=KINDS)
    def control(self, data: st.DataObject, kind: str) -> None:
        """A worker answers the cancel requests it was given (dropping only tasks it has not
        begun), and takes the new ones."""
        self.settled = False
        worker = self.worker_id(kind)
        info = self.state.workers.get(worker)
        asked = sorted(info.asked) if info is not None else []
        answers = {t: t not in self.began and data.draw(st.booleans()) for t in asked}
        dropped = {t for t, yes in answers.items()
                   if yes and t in self.state.leased and self.state.leased[t].worker == worker
                   and (self.state.leased[t].cancel_asked or self.state.leased[t].stop_asked)}
        waiting = list(info.to_ask) if info is not None else []

        asks = self.state.control(worker, answers)

        assert asks == waiting
        self.cancelled.update(dropped)
        for tid in dropped:
            result = self.result_of(tid)
            assert result is not None and result.status is Status.CANCELLED
        for tid in asked:
            if tid not in dropped and tid in self.state.leased:
                assert not self.state.leased[tid].cancel_asked or \
                    self.state.leased[tid].worker != worker

    @rule(hold=st.sampled_from([0.0, 2.0]))
    def restart(self, hold: float) -> None:
        """The master is killed and restarted on its journal: unfinished tasks (with their
        attempt counts) and unacknowledged results come back; leases and workers do not."""
        self.settled = False
        old = self.state
        self.state = self.new_state()
        self.sizes.clear()  # the new master has seen no worker yet
        self.rates.clear()  # limits are journaled, but this restart models tasks only
        self.state.restore_hold_until = self.now + hold if hold else 0.0
        for kept in old.deps.kept.values():
            self.state.deps.restore_kept(kept.result)
        for tid, result in old.retained.results.items():  # the journal's kept_results
            self.state.retained.restore(result, old.retained.until[tid])
        self.results_expired.clear()  # expired ids are not journaled
        holders = {}  # what the journal says: the worker each task was last leased to
        for rec in sorted(old.tasks.values(), key=lambda r: r.seq):
            holders[rec.msg.task_id] = rec.worker or ""
            self.state.restore_task(rec.msg, rec.seq, rec.lost, rec.errors,
                                    refused_by=rec.refused_by,
                                    holder=holders[rec.msg.task_id])
        self.state.deps.forget_unreferenced()
        assert set(self.state.deps.kept) == set(old.deps.kept)
        for letter in old.dead.letters.values():  # the journal's dead letters
            self.state.dead.restore(letter)
        self.state.restore_pauses(old.limits.paused)  # the journal's paused_queues table
        assert self.state.limits.paused == self.paused
        self.journaled_stops.update(old.changes.stops)
        for tid in self.journaled_stops:  # the journal's stops table
            self.state.restore_stop(tid)
        for box_name, box in old.outboxes.items():
            for result in box.results.values():
                self.state.restore_result(box_name, result)
        for box in OUTBOXES:
            self.session[box].clear()
        for tid, rec in self.state.tasks.items():  # a stopped task is never queued again
            held = hold and holders[tid]  # leased: it waits for its holder to claim it
            assert rec.state is (TaskState.BLOCKED if old.tasks[tid].state is TaskState.BLOCKED
                                 else TaskState.WAITING if held or rec.stop_asked
                                 else TaskState.PENDING)
        assert self.state.lease("anyone", 100, self.now) == []

    @rule(data=st.data(), box=st.sampled_from(OUTBOXES))
    def replay(self, data: st.DataObject, box: str) -> None:
        """Replay a few tasks: a dead letter becomes a new task of ``box`` with its call and
        options, linked to it; anything else is refused with a reason, and nothing changes."""
        self.settled = False
        dead = self.state.dead
        targets = self.pick(data, self.known_ids(), focus=list(dead.letters))
        new_ids = [f"{box}-t{next(self.ids)}" for _ in targets]
        before = self.view()
        links = {t: list(dead.letters[t].replayed_as) for t in targets if t in dead.letters}

        out = self.state.replay(targets, new_ids, box, self.now)

        replayed: set[str] = set()
        for tid, new_id, answer in zip(targets, new_ids, out, strict=True):
            assert answer.task_id == tid
            if tid not in links:
                assert answer.error and not answer.new_id and new_id not in self.state.tasks
                continue
            assert answer.new_id == new_id and not answer.error
            original = self.submitted[tid]
            rec = self.state.tasks[new_id]
            assert (rec.msg.fn, bytes(rec.msg.args)) == (original.fn, bytes(original.args))
            assert rec.msg.options.queue == original.options.queue and rec.msg.outbox == box
            assert rec.state is TaskState.PENDING and not rec.msg.deps
            self.submitted[new_id] = rec.msg
            links[tid].append(new_id)
            replayed.add(new_id)
        for tid, replays in links.items():
            assert dead.letters[tid].replayed_as == replays
        after = self.view()
        assert set(after) - set(before) == replayed
        assert all(after[t] == v for t, v in before.items())

    @rule(data=st.data(), kind=KINDS)
    def release(self, data: st.DataObject, kind: str) -> None:
        self.settled = False
        worker = self.worker_id(kind)
        wanted = set(self.pick(data, self.known_ids(), list(self.state.leased)))
        before = self.view()

        self.state.release(worker, sorted(wanted))

        for tid in set(before) - set(self.view()):  # only stopped tasks end on a release
            assert tid in self.stopped and tid in wanted
            result = self.result_of(tid)
            assert result is not None and result.status is Status.CANCELLED
        for tid, rec_view in self.view().items():
            state, holder, _, lost, errors = before[tid]
            if tid in wanted and state is TaskState.LEASED and holder == worker:
                assert tid not in self.stopped
                assert rec_view[0] is TaskState.PENDING
                assert rec_view[3:] == (lost, errors)
            else:
                assert rec_view == before[tid]

    @rule(kind=KINDS, n=st.integers(1, 3), arrived=st.booleans())
    def take_says_what_arrived(self, kind: str, n: int, arrived: bool) -> None:
        """A worker's take names the first task of the last batch of leases it received: a
        batch that never arrived goes back to the queue at once, no attempt used."""
        self.settled = False
        worker = self.worker_id(kind)
        info = self.state.workers.get(worker)
        if info is None:
            return
        info.sent = []  # the other rules lease without saying: start from nothing here
        self.state.arrived(worker, "")
        got = self.state.lease(worker, n, self.now, track=True)
        self.ever_leased.update(m.task_id for m in got)
        assert self.state.workers[worker].sent == [m.task_id for m in got]
        before = self.view()

        self.state.arrived(worker, got[0].task_id if got and arrived else "another")

        assert self.state.workers[worker].sent == []
        for tid, rec_view in self.view().items():
            if tid in {m.task_id for m in got} and not arrived:
                assert rec_view[0] is TaskState.PENDING and rec_view[3:] == before[tid][3:]
            else:
                assert rec_view == before[tid]
        gone = set(before) - set(self.view())  # a stopped one ends instead
        assert gone <= self.stopped

    @rule(dt=st.sampled_from([0.0, 1.0, 2.5, 6.0, 6.0]))
    def tick_and_expire(self, dt: float) -> None:
        self.settled = False
        self.now += dt
        silent = {w for w, info in self.state.workers.items()
                  if self.now - info.last_seen > LOST_AFTER}
        alive = set(self.state.workers) - silent
        overdue = {tid: rec.lost for tid, rec in self.state.leased.items()
                   if self.expires(rec) < self.now or rec.worker not in alive}

        due = {tid for tid, rec in self.state.tasks.items()
               if rec.state is TaskState.WAITING and rec.not_before <= self.now}
        asked = {tid for tid in overdue if self.state.leased[tid].cancel_asked
                 or self.state.leased[tid].stop_asked}
        stopped = {tid for tid in asked | due if self.state.tasks[tid].stop_asked}
        requeued = {tid for tid in overdue if tid not in asked
                    and overdue[tid] + 1 < self.max_lost}
        expiring = self.expiring() | {t for t in requeued
                                      if self.past(self.state.tasks[t])
                                      and self.state.tasks[t].msg.options.expires_at < self.now}
        due -= expiring

        lost = self.state.expire(self.now)
        promoted = self.state.promote(self.now)

        deps_of = {tid: self.submitted[tid].deps for tid in expiring}
        for tid in expiring:
            result = self.result_of(tid)
            assert tid not in self.state.tasks, tid
            assert result is not None
            # a dependent whose dependency expired in the same pass may end for that first
            assert result.status is Status.EXPIRED or (
                result.status is Status.DEPENDENCY_FAILED
                and any(d in expiring for d in deps_of[tid])), (tid, result.status)
        assert not self.expiring()  # none is left past its deadline with no worker
        assert promoted == len(due)
        for tid in due - stopped:
            assert self.state.tasks[tid].state is TaskState.PENDING
        for tid in asked | stopped:  # asked to cancel, and lost: it runs nowhere now
            result = self.result_of(tid)
            assert result is not None and result.status is Status.CANCELLED
        self.cancelled.update(asked - stopped)
        assert set(lost) == silent
        assert set(self.state.workers) == alive
        for tid, lost_before in overdue.items():
            if tid in asked or tid in expiring:
                continue
            if lost_before + 1 >= self.max_lost:
                result = self.result_of(tid)
                assert tid not in self.state.tasks
                assert result is not None and result.status is Status.LOST
            else:
                rec = self.state.tasks[tid]
                assert (rec.state, rec.lost) == (TaskState.PENDING, lost_before + 1)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def check_all(self) -> None:
        self.records_are_consistent()
        self.pending_counts_match()
        self.histograms_come_back_from_their_increments()
        self.held_sets_match_leases()
        self.crowd_counts_its_workers()
        self.each_task_is_in_exactly_one_place()
        self.outboxes_are_consistent()
        self.no_started_task_is_cancelled()
        self.limits_count_the_leases()
        self.resources_count_the_leases()
        self.history_follows_the_tasks()
        self.dependencies_hold()
        self.stopped_tasks_end_cancelled()
        self.refusals_are_kept()
        self.desired_workers_run_all_that_could_run()
        self.results_are_kept_for_their_ttl()
        self.dead_letters_are_the_failures()
        self.paused_queues_lease_nothing()
        self.settled = True

    def paused_queues_lease_nothing(self) -> None:
        """The paused queues are the ones the operator paused (and not resumed), and no
        lease would take a task of one, whatever it holds."""
        assert self.state.limits.paused == self.paused
        for queue in self.paused:
            assert not self.state.can_lease((queue,), self.now)

    def results_are_kept_for_their_ttl(self) -> None:
        """Each ended task with a TTL keeps its result (the one it ended with) from its end
        until end + TTL, and only then is it dropped, its id known as expired; nothing else
        is kept; the bytes count the kept bodies."""
        kept = self.state.retained
        now = self.state.now
        for tid in self.submitted:
            if tid in self.state.tasks or self.ttl_of(tid) <= 0:
                assert tid not in kept.results
                continue
            ended = self.ended_at.setdefault(tid, now)
            until = ended + self.ttl_of(tid)
            if tid in kept.results:
                assert kept.until[tid] == until
                first = self.delivered.get(tid) or self.result_of(tid)
                assert first is None or first is kept.results[tid]
            if now < until:
                assert self.state.result_state(tid, now).value == "kept", tid
            if tid in kept.results:
                self.kept_seen.add(tid)
            elif tid in self.kept_seen:  # dropped since the last step: only once due
                assert now >= until, tid
                self.kept_seen.discard(tid)
                self.results_expired.add(tid)
            if tid in self.results_expired:
                assert tid not in kept.results and kept.held(tid, now).value == "expired"
        assert set(kept.results) <= set(self.ended_at)
        assert set(kept.until) == set(kept.results)
        assert kept.bytes == sum(len(r.body or b"") for r in kept.results.values())

    def dead_letters_are_the_failures(self) -> None:
        """The dead letters are exactly the ended tasks that failed for good (no deps),
        each with its call; each replay is linked back to its original."""
        dead = self.state.dead
        for tid, msg in self.submitted.items():
            result = self.delivered.get(tid) or self.result_of(tid)
            failed = tid not in self.state.tasks and result is not None \
                and result.status in DEAD and not msg.deps
            assert (tid in dead.letters) == failed, tid
            if failed:
                letter = dead.letters[tid]
                assert (letter.fn, letter.args) == (msg.fn, bytes(msg.args))
                assert letter.status is result.status
        for new_id, tid in dead.origin.items():
            assert new_id in dead.letters[tid].replayed_as and new_id in self.submitted
        assert dead.live_count == len(dead.letters)

    def desired_workers_run_all_that_could_run(self) -> None:
        """The autoscaling target, recounted from the tasks themselves: per queue, the
        leased ones plus the queued ones each limit key lets through, within the queue's
        concurrency, over the size of the last worker that joined it (1 before any)."""
        state = self.state
        by_key = Counter(r.msg.options.limit_key for r in state.leased.values())
        want = {}
        for queue in {"default", *QUEUES}:
            leased = sum(r.msg.options.queue == queue for r in state.leased.values())
            queued = [r.msg.options for r in state.tasks.values()
                      if r.state is TaskState.PENDING and r.msg.options.queue == queue]
            keyed = Counter(o.limit_key for o in queued if o.limit_key)
            room = {o.limit_key: max(0, o.limit - by_key[o.limit_key]) for o in queued}
            could = leased + sum(not o.limit_key for o in queued) + sum(
                min(n, room[k]) for k, n in keyed.items())
            if queue in self.paused:  # its queued tasks wait for a resume
                could = leased
            limit = state.limits.by_queue.get(queue)
            if limit is not None and limit.concurrency:
                could = min(could, limit.concurrency)
            size = self.sizes.get(queue, 1)
            want[queue] = -(-could // size)
            assert want[queue] * size >= could > (want[queue] - 1) * size or could == 0
        got = desired_workers(state.queues, state.limits, state.sizes)
        assert {q: got.get(q, 0) for q in want} == want
        assert all(n == 0 for q, n in got.items() if q not in want)

    def refusals_are_kept(self) -> None:
        """A live task knows exactly the workers that could not load it; one that ended
        UNLOADABLE was refused by every worker of its queue then connected (or by enough)."""
        for tid, rec in self.state.tasks.items():
            assert set(rec.refused_by or ()) == self.refused.get(tid, set()), tid
        for tid in list(self.refused):
            if tid not in self.state.tasks:
                del self.refused[tid]

    def stopped_tasks_end_cancelled(self) -> None:
        """A stopped task is never queued again: it is leased (its worker asked), or held
        after a restart for its holder; else it ended, once, CANCELLED."""
        for tid in self.stopped:
            rec = self.state.tasks.get(tid)
            if rec is not None:
                assert rec.stop_asked and rec.state in (TaskState.LEASED, TaskState.WAITING)
                continue
            result = self.result_of(tid) or self.delivered.get(tid)
            assert result is not None and result.status is Status.CANCELLED, tid
        for tid, rec in self.state.tasks.items():
            assert not rec.stop_asked or tid in self.stopped, tid

    def dependencies_hold(self) -> None:
        """Blocked tasks wait exactly for their live deps; a task queued, waiting or leased
        has every dep ended OK (kept); a dependent of a dep that did not end OK never ran and
        ended DEPENDENCY_FAILED; a kept result is referenced by exactly its live dependents."""
        state, deps = self.state, self.state.deps
        refs: Counter[str] = Counter()
        for tid, rec in state.tasks.items():
            live = [d for d in rec.msg.deps if d in state.tasks]
            if rec.state is TaskState.BLOCKED:
                assert live and deps.blockers(tid) == live
                assert deps.missing[tid] == len(live)
            else:
                assert not live and tid not in deps.missing
            refs.update(d for d in rec.msg.deps if d in deps.kept)
            assert all(d in state.tasks or d in deps.kept for d in rec.msg.deps), tid
        assert set(deps.missing) == {t for t, r in state.tasks.items()
                                     if r.state is TaskState.BLOCKED}
        assert {d: k.refs for d, k in deps.kept.items()} == dict(refs)
        for kept in deps.kept.values():
            assert kept.result.status is Status.OK
        for tid, rec in state.leased.items():
            assert all(d in deps.kept for d in rec.msg.deps), tid
        self.ever_leased.update(state.leased)
        for tid in self.submitted:
            mine = self.delivered.get(tid) or self.result_of(tid)
            if mine is not None and mine.status is Status.DEPENDENCY_FAILED:
                assert tid not in self.ever_leased, tid
                assert self.submitted[tid].deps

    def history_follows_the_tasks(self) -> None:
        """Each leased task has exactly one live attempt, on its holder; a task whose
        history ended is no longer in the state, with the outcome its result carries."""
        hist = self.state.history
        assert set(hist.live) == set(self.state.leased)
        for tid, attempt in hist.live.items():
            assert attempt.worker == self.state.leased[tid].worker and not attempt.outcome
        for tid, task in hist.tasks.items():
            assert [a.n for a in task.attempts] == list(range(1, len(task.attempts) + 1))
            if task.outcome:
                assert tid not in self.state.tasks
                assert task.attempts[-1].final and task.attempts[-1].outcome == task.outcome
                result = self.result_of(tid)
                if result is not None:
                    assert OUTCOMES[result.status] == task.outcome

    def records_are_consistent(self) -> None:
        state = self.state
        children = {t for t, r in state.tasks.items() if r.msg.options.parent}
        assert state.children.of == ({ORPHANAGE: children} if children else {})
        assert set(state.tasks) <= set(self.submitted)
        for tid, rec in state.tasks.items():
            assert rec.state in (TaskState.WAITING, TaskState.PENDING, TaskState.LEASED,
                                 TaskState.BLOCKED)
            assert not (rec.started and rec.cancel_asked)
            assert not rec.started or rec.state is TaskState.LEASED
            assert (rec.state is TaskState.LEASED) == (tid in state.leased), tid
            assert rec.lost < self.max_lost
            assert rec.errors <= rec.msg.options.retries
        for tid, rec in state.leased.items():
            assert state.tasks.get(tid) is rec

    def histograms_come_back_from_their_increments(self) -> None:
        """What the journal would hold of the wait and run histograms (their increments,
        none drained here) restores them: every bucket, and the sum to the microsecond."""
        stats = self.state.history.stats
        again = Stats()
        for key, n in stats.unjournaled.items():
            again.restore(key, n)
        for live, back in ((stats.wait, again.wait), (stats.run, again.run)):
            assert {q: h.counts for q, h in live.items()} == {q: h.counts for q, h in back.items()}
            for q, h in live.items():
                assert abs(back[q].total - h.total) <= 1e-6 * (sum(h.counts) + 1), q
        assert again.counters == stats.counters

    def pending_counts_match(self) -> None:
        real = Counter(r.msg.options.queue for r in self.state.tasks.values()
                       if r.state is TaskState.PENDING)
        for queue in QUEUES:
            assert self.state.pending_by_queue[queue] == real[queue]
            valid = self.state.queues.valid_pending(queue)
            assert sorted(r.msg.task_id for r in valid) == sorted(
                t for t, r in self.state.tasks.items()
                if r.state is TaskState.PENDING and r.msg.options.queue == queue)

    def crowd_counts_its_workers(self) -> None:
        real: Counter[str] = Counter()
        for info in self.state.workers.values():
            for queue in set(info.queues):
                real[queue] += info.procs
        assert +self.state.crowd.procs_by_queue == +real

    def held_sets_match_leases(self) -> None:
        workers = self.state.workers
        for tid, rec in self.state.leased.items():
            if rec.worker in workers:
                assert tid in workers[rec.worker].held
        for worker_id, info in workers.items():
            for tid in info.held:
                rec = self.state.leased.get(tid)
                assert rec is not None and rec.worker == worker_id

    def each_task_is_in_exactly_one_place(self) -> None:
        for tid in self.submitted:
            rec: TaskRecord | None = self.state.tasks.get(tid)
            places = [rec is not None and rec.state in (TaskState.PENDING, TaskState.WAITING,
                                                        TaskState.BLOCKED),
                      rec is not None and rec.state is TaskState.LEASED,
                      self.result_of(tid) is not None or tid in self.acked]
            assert sum(places) == 1, (tid, places)

    def outboxes_are_consistent(self) -> None:
        open_by_box = Counter(r.msg.outbox for r in self.state.tasks.values())
        for name, box in self.state.outboxes.items():
            assert box.open == open_by_box[name]
            assert box.sent <= set(box.results)
            for tid in box.results:
                assert self.submitted[tid].outbox == name
        for name in OUTBOXES:
            if name in self.state.outboxes:
                assert self.state.open_count(name) == open_by_box[name]
            else:
                assert not open_by_box[name]

    def limits_count_the_leases(self) -> None:
        leased = self.state.leased.values()
        by_queue = Counter(r.msg.options.queue for r in leased)
        by_key = Counter(r.msg.options.limit_key for r in leased if r.msg.options.limit_key)
        limits = self.state.limits
        assert +limits.running_by_queue == by_queue
        assert +limits.running_by_key == by_key

    def resources_held_by(self, worker: str) -> Counter[str]:
        """What the tasks leased to a worker need, summed."""
        used: Counter[str] = Counter()
        for rec in self.state.leased.values():
            if rec.worker == worker:
                for name, amount in rec.msg.options.resources:
                    used[name] += amount
        return used

    def resources_count_the_leases(self) -> None:
        """Each connected worker's resources in use are what its leased tasks need; a task
        that needs more than any connected worker has is reported unfit."""
        book = self.state.resources
        assert set(book.capacity) == set(self.state.workers)
        for worker in self.state.workers:
            used = {k: v for k, v in book.used[worker].items() if v}
            assert used == dict(self.resources_held_by(worker)), worker
        unfit = unfit_counts(self.state.queues.heaps, book)
        pending = [r for r in self.state.tasks.values() if r.state is TaskState.PENDING]
        most = max((dict(book.capacity[w]).get("gpu", 0.0) for w in self.state.workers),
                   default=None)
        expected = Counter(f"gpu={dict(r.msg.options.resources)['gpu']:g}" for r in pending
                           if r.msg.options.resources and most is not None
                           and dict(r.msg.options.resources)["gpu"] > most)
        assert unfit == dict(expected)

    def no_started_task_is_cancelled(self) -> None:
        """No task is cancelled while a worker runs it (it may be once it is queued again)."""
        for tid in self.cancelled:
            assert tid not in self.began, tid
        self.began = {t for t in self.began if t in self.state.leased}

    # ------------------------------------------------------------------ the end

    def teardown(self) -> None:
        if not self.settled:
            return  # a step failed; its own error is the one to report
        self.drain()
        self.replay_the_dead()
        final: dict[str, ResultMsg] = {}
        for box in OUTBOXES:
            self.state.resend(box)
            for result in self.state.fetch(box, [], 10_000).results:
                assert result.task_id not in final
                final[result.task_id] = result
                assert self.delivered.get(result.task_id, result) is result
        assert not final.keys() & self.acked
        for tid in self.submitted:
            assert (tid in final) != (tid in self.acked), tid
            if (tid in self.cancelled or tid in self.stopped) and tid in final:
                assert final[tid].status is Status.CANCELLED

    def replay_the_dead(self) -> None:
        """Every dead letter not replayed yet is replayed, and each replay runs to its end."""
        dead = [t for t, d in self.state.dead.letters.items() if not d.replayed_as]
        if not dead:
            return
        new_ids = [f"a-t{next(self.ids)}" for _ in dead]
        out = self.state.replay(dead, new_ids, "a", self.now)
        assert [r.new_id for r in out] == new_ids
        self.submitted.update((t, self.state.tasks[t].msg) for t in new_ids)
        self.dead_letters_are_the_failures()
        self.drain()
        assert not self.state.tasks
        self.dead_letters_are_the_failures()

    def drain(self) -> None:
        """Resume every queue, expire every lease, then lease all that is left to one worker
        and complete it (in rounds: limits let only so many run at once)."""
        for queue in sorted(self.paused):
            assert self.state.pause_queue(queue, False)
        self.paused.clear()
        for _ in range(2 + len(self.state.tasks)):
            if not self.state.tasks:
                break
            self.now += LOST_AFTER + 1
            self.state.expire(self.now)
            self.state.promote(self.now)
            self.records_are_consistent()
            self.state.register(WorkerInfo("drain", "host", 1, 1, QUEUES,  # fits every task
                                           resources=(("gpu", 3.0 * len(self.state.tasks)),)),
                                self.now)
            msgs = self.state.lease("drain", len(self.state.tasks), self.now)
            self.state.complete("drain", [ResultMsg(m.task_id, Status.OK, self.new_body())
                                          for m in msgs], self.now)
            self.records_are_consistent()
            self.each_task_is_in_exactly_one_place()
            self.pending_counts_match()
        assert not self.state.tasks
        assert not self.state.leased


BrokerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                           deadline=None, database=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestBrokerMachine = BrokerMachine.TestCase
