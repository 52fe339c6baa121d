"""A worker: leases tasks from the master and runs them in a local pool of processes.

Only this (main) process talks to the master, over one ``Link`` shared by two threads
(a connection each, the pump's opened by its first call: a worker that has run nothing
holds one connection, its poll's, on which it joined):

    poll ───── take(hold, answers) ──► master  hold = what keeps the pool busy (adaptive); the
      │        ◄── tasks, cancel requests       master tops the worker up to it, and wakes
      │ Job                                     the parked poll when a report frees room
      ▼                                                         ▲ report(results, started)
    ProcessPool (N processes) ── outcomes, starts ──► pump (main thread)
    beat ─────── the pump's own call every heartbeat interval (a second, or as long as the
                 master says in a big crowd): beat(Beat) says what it holds as a
                 digest, what runs, its memory and its tasks' progress. The master answers a
                 digest that differs from its own with send_held (the list then goes in a
                 heartbeat), and a worker it does not know with beat 0 (it registers again).
                 A poll renews the worker too, and its answer says what a beat's would: until
                 the pump first calls, the poll comes back within 2/3 of the allowed silence
                 instead
    acks ─────── results reported but not yet journaled (taskq.worker.acks), kept until a
                 receipt covers them, re-sent to a restarted master
    asks ─────── cancel requests, answered in the next poll: pool.cancel(task) drops a task
                 that has not begun (True) or says it runs (False); a stop request
                 (messages.stop_ask) also kills it if it runs (pool.kill_task), and the task
                 is reported CANCELLED

Stopping (``stop()``, wired to SIGTERM/SIGINT by the CLI, or ``drain()``, when a beat's
answer says an operator asked for it with ``taskq worker drain``): take nothing new, hand
back the tasks not begun (written ahead to a busy process too), let running ones finish
for ``grace`` seconds, then say goodbye naming what still runs (killed here, it is queued
again at once, no attempt used). A second ``stop()`` (or ``stop(now=True)``) ends it at
once. While what it runs may still
finish, a stopping worker reconnects to a master that restarts, and says it drains when it
joins it; with nothing running, or past its grace, it gives up on a vanished master at
once. The pool's processes outlive a signal sent to the worker's whole process group: only
the worker stops them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from taskq import defaults, logs
from taskq.errors import ConnectError, MasterError
from taskq.net.link import Link
from taskq.protocol import messages, names
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import ResultMsg, TaskMsg, WorkerHello
from taskq.protocol.replies import Leased
from taskq.worker import execute, results, setup, tracing
from taskq.worker.acks import Unacked, by_size
from taskq.worker.beats import Beats, memory
from taskq.worker.config import WorkerConfig, make_pool, prefetch
from taskq.worker.context import TaskContext
from taskq.worker.pools.job import Job, Outcome, OutcomeKind
from taskq.worker.units import Units

log = logs.get_logger(__name__)




class Worker:
    """One worker process's loop; ``run()`` returns the process exit code."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        host = socket.gethostname()
        self.name = f"{host}:{os.getpid()}"
        self.worker_id = names.new_worker_claim(host, os.getpid())  # a secret, see owners
        self.public_id = names.worker_name(self.worker_id)  # as taskq status shows it
        self.hello = WorkerHello(self.worker_id, host, os.getpid(), config.procs,
                                 tuple(config.queues), config.pool, config.resources)
        self.units = Units(config.resources)
        # for taskq.current_client() in tasks: the pool's processes inherit these
        os.environ[defaults.ENV_TASK_MASTER] = f"{config.address[0]}:{config.address[1]}"
        os.environ[defaults.ENV_TASK_AUTHKEY] = config.authkey.decode("utf-8", "surrogateescape")
        if config.tls is not None:
            config.tls.export()  # ... and its TLS settings
        execute.import_from(config.paths)  # the thread and asyncio pools run tasks here
        setup.check(config.setup)  # a hook that cannot be found: SetupError, no start
        self.pool = make_pool(config)
        self.spans = tracing.Spans.open(self.public_id, config.pool)  # None: not traced
        self.link = Link(config.address, config.authkey, reconnect_for=config.connect_for,
                         tls_settings=config.tls,
                         on_connect=self._on_connect)
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        # held by a heartbeat from its snapshot of held tasks until the master has it, and
        # by a report or release until the master has it: a heartbeat never claims back a
        # task this worker has just reported or handed back
        self._sync = threading.Lock()
        self._draining = threading.Event()
        self._signalled = threading.Event()  # stop() was called: a second call halts
        self._halt = threading.Event()
        self._mean_s = defaults.PREFETCH_TARGET_S / defaults.PREFETCH_MIN
        self._lost_master = threading.Event()
        self._retry_on: dict[str, tuple[str, ...]] = {}  # held tasks that name retry_on
        self._attempts: dict[str, int] = {}  # held tasks handed out before (not the first)
        self.acks = Unacked()  # reported results the master has not journaled yet
        self._epoch = ""  # the master run last joined
        self.beats = Beats(config.heartbeat, self.link)
        self._intake = threading.Lock()  # leased tasks going into the pool, or a cancel
        self._late_answers: dict[str, bool] = {}  # answers to asks a top-up take brought
        self._max_payload = int(defaults.MAX_PAYLOAD_MB * 2**20)  # the master's, once joined
        self._dropped: OrderedDict[str, None] = OrderedDict()  # cancelled here, never run
        self.log = log.bind(worker_id=self.public_id)

    # ------------------------------------------------------------------ control

    def stop(self, now: bool = False) -> None:
        """Begin a graceful stop; with now=True (or a second call) stop at once."""
        if self._signalled.is_set() or now:
            self._halt.set()
            self.link.give_up_reconnecting()
        self._signalled.set()
        self._begin_stop()

    def drain(self) -> None:
        """A graceful stop an operator asked for (``taskq worker drain``): as ``stop()``,
        but asking again never makes it stop at once."""
        if not self._draining.is_set():
            self.log.warning("worker_drain_asked", grace_s=self.config.grace)
        self._begin_stop()

    def _begin_stop(self) -> None:
        if not self._draining.is_set():
            self._draining.set()
            self._reconnect_for(self.config.grace if self.pool.in_flight() else 0.0)
        self.pool.wake()

    def _reconnect_for(self, seconds: float) -> None:
        """A stopping worker reconnects to a master that restarts only while what it runs
        may still finish (its grace): a master that is gone must not hold it for the whole
        reconnect window."""
        if seconds <= 0:
            self.link.give_up_reconnecting()
            return
        timer = threading.Timer(seconds, self.link.give_up_reconnecting)
        timer.daemon = True
        timer.start()

    def _on_connect(self, remote: BrokerAPI) -> None:
        with self._held_lock:
            held = list(self._held)
        self._join(remote, held)

    def _join(self, remote: BrokerAPI, held: list[str]) -> None:
        """Register (again), claim back the tasks this worker still holds, and report again
        the results a master of another run took but never journaled."""
        info = remote.register(dataclasses.replace(self.hello,
                                                   draining=self._draining.is_set()))
        self._max_payload, self._epoch = info.max_payload, info.epoch
        self.beats.told(info.heartbeat, info.lost_after)
        remote.heartbeat(self.worker_id, held, self.pool.running(), memory=memory(self.pool))
        resend = self.acks.resend(info.epoch)
        for chunk in by_size(resend):
            self.acks.keep(remote.report(self.worker_id, chunk, resent=True), chunk)
        if resend:
            self.log.info("results_resent", count=len(resend))

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        self.pool.start()
        joined: Future[None] = Future()
        poll = threading.Thread(target=self._poll_thread, args=(joined,), name="taskq-poll",
                                daemon=True)
        poll.start()
        try:
            joined.result()
        except ConnectError as exc:
            self.log.error("connect_failed", error=str(exc))
            self.pool.kill()
            return 1
        self.log.info("worker_started", master=f"{self.config.address[0]}:"
                      f"{self.config.address[1]}", procs=self.config.procs,
                      pool=self.config.pool)
        try:
            self._pump()
            code = 0 if not self._lost_master.is_set() else 1
        except (ConnectError, MasterError) as exc:  # a vanished master fails no stop asked
            stopping = isinstance(exc, ConnectError) and self._draining.is_set()
            (self.log.warning if stopping else self.log.error)("master_unreachable",
                                                               error=str(exc))
            code = 1 if self._lost_master.is_set() or not stopping else 0
        finally:
            self._draining.set()
            self._halt.set()
            self.pool.kill()
            self.link.close()
        self.log.info("worker_stopped", exit_code=code)
        return code

    def _poll_thread(self, joined: Future[None]) -> None:
        """Join on the poll's connection (so that a worker that has run nothing holds only
        that one), then poll."""
        try:
            self._connect()
        except BaseException as exc:
            joined.set_exception(exc)
            return
        joined.set_result(None)
        self._guard(self._poll_loop)()

    def _connect(self) -> None:
        """Open the link; a master not there yet is said once, with how long we wait."""
        first = min(defaults.CONNECT_NOTICE_S, self.config.connect_for)
        try:
            self.link.open(first)
        except ConnectError as exc:
            rest = self.config.connect_for - first
            if rest <= 0:
                raise
            self.log.warning("waiting_for_master", master=f"{self.config.address[0]}:"
                             f"{self.config.address[1]}", for_s=round(rest), error=str(exc))
            self.link.open(rest)

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        """No thread dies silently: a failure stops the worker (exit 1); its tasks go back
        to the queue when their leases expire."""
        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                if isinstance(exc, ConnectError) and self._draining.is_set():
                    return  # stopping anyway: a vanished master is no failure of the stop
                if isinstance(exc, ConnectError):
                    self.log.error("master_unreachable", error=str(exc))
                else:
                    self.log.exception("worker_thread_failed", error=repr(exc))
                self._lost_master.set()
                self.stop(now=True)
        return run

    def _pump(self) -> None:
        """Report outcomes as they come, and beat; on a stop, drain within the grace."""
        while not self._draining.is_set():
            self._beat_if_due()
            idle = defaults.ACK_LINGER_S if len(self.acks) else defaults.LONG_POLL_S
            outcomes = self.pool.get_outcomes(timeout=idle)
            if not outcomes:  # a task began: tell it with its outcome if that comes soon
                outcomes = self.pool.get_outcomes(defaults.START_LINGER_S, starts_wake=False)
            if outcomes and self.pool.in_flight() > self.config.procs:
                time.sleep(defaults.REPORT_LINGER_S)  # a batching window, see defaults
                outcomes += self.pool.get_outcomes(timeout=0)
            self._report(outcomes)
            if not outcomes:
                self._confirm()
            self._top_up()
        if self._halt.is_set():
            self._say_goodbye(self.pool.take_back(), killed=self.pool.stop(0))
            return
        try:
            self._drain(self._not_begun())
        except ConnectError as exc:  # the master expires what could not be handed back
            self.log.warning("master_unreachable", error=str(exc))
        self._say_goodbye([], killed=self.pool.stop(0))

    def _not_begun(self) -> list[str]:
        """Take out of the pool every task it has not begun: those waiting for a process,
        and those written ahead to a busy one (dropped there: it never runs them)."""
        with self._intake:  # no task goes into the pool meanwhile
            unstarted = [j.task_id for j in self.pool.take_back()]
            with self._held_lock:
                held = self._held.difference(unstarted)
            return unstarted + [t for t in held if self.pool.cancel(t)]

    def _drain(self, unstarted: list[str]) -> None:
        """Hand back the unstarted tasks, then report running ones for up to ``grace`` s."""
        with self._sync:
            self.link.remote.release(self.worker_id, unstarted, goodbye=False)
            self._forget(unstarted)
        self.log.info("worker_draining", running=self.pool.in_flight(),
                      grace_s=self.config.grace, released=len(unstarted))
        deadline = time.monotonic() + self.config.grace
        while self.pool.in_flight() and not self._halt.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._report(self.pool.get_outcomes(timeout=min(remaining, defaults.LONG_POLL_S)))
            self._beat_if_due()
        self.link.give_up_reconnecting()  # nothing more to wait for

    def _say_goodbye(self, unstarted: list[Job], killed: list[Job]) -> None:
        with contextlib.suppress(ConnectError, MasterError):  # else the leases expire
            self._report(self.pool.get_outcomes(timeout=0))
            self._confirm()
        back = [j.task_id for j in unstarted + killed]
        self._halt.set()  # no heartbeat after the goodbye
        with self._sync, contextlib.suppress(ConnectError, MasterError):  # else they expire
            self.link.remote.release(self.worker_id, back, goodbye=True)
        self._forget(back)

    def _report(self, outcomes: list[Outcome]) -> None:
        """Report outcomes, and the tasks that began since the last report (a task that
        also ended in the meantime needs no start)."""
        started = self.pool.take_started()
        if not outcomes and not started:
            return
        results = [self._result(o) for o in outcomes]
        if self.spans is not None:
            self.spans.end(results)
        if outcomes:  # before the master hears of it: it may lease the units again at once
            self.units.free([o.task_id for o in outcomes])
        if started and results:
            ended = {r.task_id for r in results}
            started = [t for t in started if t not in ended]
        for chunk in by_size(results) or [[]]:
            with self._sync:
                receipt = self.beats.quick().report(self.worker_id, chunk, started=started)
                self._forget([r.task_id for r in chunk])
            self.acks.keep(receipt, chunk)
            started = []
        durations = [o.duration for o in outcomes if o.kind is OutcomeKind.DONE]
        if durations:  # longer tasks are believed at once, shorter ones gradually
            recent = sum(durations) / len(durations)
            self._mean_s = max(recent, 0.8 * self._mean_s + 0.2 * recent)

    def _confirm(self) -> None:
        """With reported results not yet journaled and nothing more to report: wait
        (bounded) for the master's journal to have them."""
        epoch = self._epoch
        ticket = self.acks.waiting_for(epoch)
        if ticket:
            self.acks.keep(self.beats.quick().report(self.worker_id, [], durable_to=ticket), [])

    def _result(self, outcome: Outcome) -> ResultMsg:
        return results.of(outcome, self.name, self._max_payload,
                          self._attempts.get(outcome.task_id, 0),
                          self._retry_on.get(outcome.task_id, ()), self.log)

    def _cancelled(self, task_id: str, how: str, duration: float = 0.0) -> ResultMsg:
        return results.cancelled(task_id, how, self.name, self._attempts.get(task_id, 0),
                                 duration)

    def _payload(self, task: TaskMsg) -> execute.Payload:
        """What the pool runs, and what the task is told (``taskq.current_task()``): its id,
        its units, its attempt, queue and this worker's public id; CUDA_VISIBLE_DEVICES is
        set only where the task has a process of its own."""
        # the arguments go to the pool process uncopied (out of band) when large
        args: Any = pickle.PickleBuffer(task.args)
        if task.inputs:  # its dependencies' results, in place of their futures
            args = (args, tuple((d, pickle.PickleBuffer(b)) for d, b in task.inputs))
        needs = task.options.resources
        units = self.units.assign(task.task_id, needs) if needs else {}
        context = TaskContext(task_id=task.task_id, resources=units, attempt=task.attempt,
                              queue=task.options.queue, worker=self.public_id)
        return execute.Payload(fn=task.fn, args=args, retry_on=task.options.retry_on,
                               context=context, gpu_env=self.config.pool == "processes",
                               expires_at=task.options.expires_at,
                               soft_timeout=task.options.soft_timeout,
                               trace=self.spans.begin(task) if self.spans else "")

    def _forget(self, task_ids: list[str]) -> None:
        self.units.free(task_ids)
        if self.spans is not None:
            self.spans.forget(task_ids)
        with self._held_lock:
            self._held.difference_update(task_ids)
            for kept in (self._retry_on, self._attempts):
                if kept:
                    for task_id in task_ids:
                        kept.pop(task_id, None)

    # ------------------------------------------------------------------ threads

    def _hold(self) -> int:
        """How many tasks to hold (none once it is stopping): see ``prefetch``."""
        if self._draining.is_set():
            return 0
        return prefetch(self.config.pool, self.config.procs + self.pool.seceded(),
                        self._mean_s)  # + the slots its waiting tasks lent out

    def _poll_loop(self) -> None:
        """Lease tasks (the master keeps this worker holding ``_hold()``, and a report that
        frees room wakes the poll) and answer cancel requests: drop each task that has not
        begun, stop each one asked to stop."""
        received = ""  # the first task of the last batch of leases that came
        answers: dict[str, bool] = {}
        while not self._halt.is_set():
            with self._intake:  # and the answers to asks the pump's top-up brought
                answers.update(self._late_answers)
                self._late_answers.clear()
            # until the pump calls, the poll is what keeps this worker heard: it comes
            # back within 2/3 of the silence the master allows (it renews it as a beat does)
            leased = self.link.remote.take(self.worker_id, self._hold(),
                                           wait=self.beats.poll_wait(),
                                           received=received, answers=answers)
            self._told(leased.beat, leased.drain)
            answers = {ask: self._answer(ask) for ask in leased.asks}
            if not leased.tasks:
                continue
            received = leased.tasks[0].task_id  # the next take says this batch arrived
            self._accept(leased)
            if self._draining.is_set():
                self.pool.wake()

    def _told(self, beat: float, drain: bool, send_held: bool = False) -> None:
        """What the answer to a beat or a poll says: drain; join again (beat 0: the master
        does not know this worker) or send the list of what it holds (the digests differ);
        else the heartbeat interval."""
        if drain:
            self.drain()
        if not beat or send_held:
            self._send_held(rejoin=not beat)
        else:
            self.beats.told(beat)

    def _accept(self, leased: Leased) -> None:
        """Hold a batch of leases and hand it to the pool, once the journal has it."""
        if leased.ticket and not self._journaled(leased.ticket):
            self.log.info("leases_void", count=len(leased.tasks),
                          reason="the master restarted before it journaled them")
            return  # the restored master has them queued: they run once, elsewhere
        with self._intake:  # a cancel asked meanwhile is answered before or after this
            self._take_in(leased.tasks)

    def _journaled(self, ticket: int) -> bool:
        """Wait until the master's journal has the leases of ``ticket``: True, or False if
        the master of those leases is gone (another run answers, or this worker stops)."""
        epoch = self._epoch
        while not self._halt.is_set():
            try:
                receipt = self.link.remote.report(self.worker_id, [], durable_to=ticket)
            except ConnectError:
                return False
            if receipt.epoch != epoch:
                return False
            if receipt.durable >= ticket:
                return True
        return False

    def _top_up(self) -> None:
        """While tasks lend their slots out (they wait on others), lease up to the larger
        hold from here, at each turn of the pump: the parked poll asked with the smaller
        one, and the tasks they wait for may reach the master only now."""
        if not self.pool.seceded() or self._draining.is_set():
            return
        hold = self._hold()
        with self._held_lock:
            room = hold - len(self._held)
        if room > 0:
            leased = self.beats.quick().take(self.worker_id, hold, wait=0)
            late = {ask: self._answer(ask) for ask in leased.asks}
            with self._intake:  # the poll's next take carries them
                self._late_answers.update(late)
            if leased.tasks:
                self._accept(leased)

    def _take_in(self, tasks: list[TaskMsg]) -> None:
        """Hold leased tasks and hand them to the pool, but those already dropped (a cancel
        that reached this worker before the tasks did)."""
        tasks = [t for t in tasks if t.task_id not in self._dropped]
        with self._held_lock:
            self._held.update(t.task_id for t in tasks)
        self.log.debug("tasks_leased", count=len(tasks), task_ids=[t.task_id for t in tasks])
        for task in tasks:
            payload = self._payload(task)
            if task.options.retry_on:
                self._retry_on[task.task_id] = task.options.retry_on
            if task.attempt:
                self._attempts[task.task_id] = task.attempt
            self.pool.submit(Job(task.task_id, payload, task.options.timeout))

    def _send_held(self, rejoin: bool) -> None:
        """The master asked for the list of what this worker holds (or lost the worker: it
        joins again, with the list)."""
        with self._sync:  # never a task this worker has just reported or handed back
            if self._halt.is_set():
                return
            with self._held_lock:
                held = list(self._held)
            remote = self.link.remote
            if rejoin:
                self.log.warning("worker_rejoined", held=len(held))
                self._join(remote, held)
            else:
                self.log.info("held_sent", held=len(held))
                remote.heartbeat(self.worker_id, held, self.pool.running())

    def _beat_if_due(self) -> None:
        """Tell the master this worker lives, once per heartbeat interval: a digest of what
        it holds, what runs, its memory and its tasks' progress (a call that never waits)."""
        if not self.beats.due(time.monotonic()):
            return
        with self._sync:  # never a digest without a task just reported or handed back
            if self._halt.is_set():
                return
            with self._held_lock:  # (memory and progress are read outside it)
                digest = messages.held_digest(self._held)
            beat = self.beats.beat(digest, self.pool)
            beaten = self.beats.quick().beat(self.worker_id, beat)
        self._told(beaten.beat, beaten.drain, beaten.send_held)
        self.beats.beaten(time.monotonic())

    def _answer(self, ask: str) -> bool:
        task_id, stop = messages.parse_ask(ask)
        return self._stop(task_id) if stop else self._drop(task_id)

    def _stop(self, task_id: str) -> bool:
        """Stop a task wherever it is here: drop it if it has not begun (or not arrived),
        kill it if it runs (the pool then reports it CANCELLED); False if it ended (the
        master ends it CANCELLED when its result comes)."""
        if self.pool.kill_task(task_id):
            self.log.info("task_stopped", task_id=task_id, reason="cancelled while it ran")
            return True
        if not self._drop(task_id):
            return self.pool.kill_task(task_id)  # it began in between
        with self._sync:  # it never runs here: the master hears it now
            result = self._cancelled(task_id, "cancelled before it began")
            self.acks.keep(self.beats.quick().report(self.worker_id, [result], started=[]),
                           [result])
        return True

    def _drop(self, task_id: str) -> bool:
        """Make sure a task never runs here; False if it runs (or ended, or is unknown)."""
        with self._intake:
            if task_id in self._dropped:
                return True  # asked again: the first answer was lost
            with self._held_lock:
                arrived = task_id in self._held
            if arrived and not self.pool.cancel(task_id):
                return False
            # not arrived yet (its lease is on the way): it is skipped when it comes
            self._dropped[task_id] = None
        self._forget([task_id])
        if len(self._dropped) > defaults.KNOWN_JOBS_KEPT:
            self._dropped.popitem(last=False)
        self.log.info("task_dropped", task_id=task_id, reason="cancelled before it began")
        return True

