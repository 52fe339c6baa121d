"""Simulated workers for the scale benchmark: many in one process, the real protocol.

    python -m bench.scale_sim --connect HOST:PORT --workers N [--active K]   (TASKQ_AUTHKEY)

Each simulated worker makes the calls a ``taskq worker --procs 1`` makes, over the same
connections (``taskq.worker.worker`` opens one per thread that calls the master):

    poll ────── Link.open: register(hello) + heartbeat (the join), then
                take(worker_id, hold, wait, answers) long-polls for tasks up to hold (the
                worker's prefetch) and for cancel requests (answered in the next)
    pump ────── report(results), gathering for REPORT_LINGER_S when more are in flight (as
                the worker's pump); its first call opens its connection

Until its pump first calls, a worker's poll keeps it heard: it waits at most two thirds
of the silence the master allows (``taskq.worker.beats``), and registers again when its answer
says beat 0. From then on the pump beats every interval (as long as the master says in a
big crowd): beat(Beat(digest of held)); it sends the held list when asked, and registers
again on a beat of 0. An idle worker thus holds
one connection, an active one two.

It runs no task: what it takes it reports at once as OK with the body of ``None``. The N
idle workers take from queue ``default`` (the benchmark submits nothing there), the K active
ones from ``--active-queue``; each reconnects on its own through its ``Link`` when the master
restarts. Threads per worker: 2 (stack of STACK_KIB); RLIMIT_NOFILE is raised to its hard
limit. Events go to stdout as JSON lines; commands come on stdin, one per line:

    count    {"event": "count", "joins": ..., "failed": ..., "workers": ...}
    freeze   the next active worker to take a task keeps it and goes silent (no call again,
             its connections stay open): {"event": "frozen", "task_id", "worker", "t"}
    takes    {"event": "takes", "takes": {task_id: wall time it was taken}} (then cleared)
    quit     (or end of input) exit at once
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import queue
import resource
import socket
import sys
import threading
import time
from typing import Any

from bench import scale_api
from taskq import defaults
from taskq.errors import ConnectError, MasterError
from taskq.net.connection import parse_address
from taskq.protocol import bodies, names
from taskq.protocol.messages import Beat, ResultMsg, Status, WorkerHello, held_digest
from taskq.worker.beats import Beats

STACK_KIB = 256
# First joins under way at once in one simulator process: thousands of threads connecting
# together on two cores starve the master's handshakes (a real fleet starts over minutes);
# the ones waiting their turn are blocked, not runnable. Rejoins after a restart are not held.
JOINING = 8
NONE_BODY = bodies.encode_value(None)
WANT = defaults.PREFETCH_MAX  # a one-process worker's prefetch for tasks that take no time


def raise_nofile() -> tuple[int, int]:
    """Raise this process's open-file limit to its hard limit; (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Fleet:
    """What the simulated workers of this process share."""

    def __init__(self, address: tuple[str, int], authkey: bytes, reconnect_for: float) -> None:
        self.address = address
        self.authkey = authkey
        self.reconnect_for = reconnect_for
        self.lock = threading.Lock()
        self.joins = 0  # every register, first and again after a restart
        self.joined = 0  # workers whose first join completed
        self.failed = 0  # workers whose link gave up
        self.errors: list[str] = []
        self.freeze_next = False
        self.takes: dict[str, float] = {}
        self.halt = threading.Event()
        self.out_lock = threading.Lock()
        self.joining = threading.BoundedSemaphore(JOINING)

    def emit(self, event: str, **fields: Any) -> None:
        with self.out_lock:
            sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
            sys.stdout.flush()

    def note_failure(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])


class SimWorker:
    """One simulated ``taskq worker --procs 1``."""

    def __init__(self, fleet: Fleet, queue_name: str, active: bool) -> None:
        self.fleet = fleet
        self.active = active
        host = socket.gethostname()
        self.worker_id = names.new_worker_claim(host, os.getpid())
        self.public_id = names.worker_name(self.worker_id)
        self.hello = WorkerHello(self.worker_id, host, os.getpid(), 1, (queue_name,),
                                 "processes", ())
        self.name = f"{host}:{os.getpid()}"
        self.link = scale_api.link(fleet.address, fleet.authkey, fleet.reconnect_for,
                                   on_connect=self._join)
        self.calls = scale_api.calls(self.link)
        self.held: set[str] = set()
        self.held_lock = threading.Lock()
        self.outcomes: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self.frozen = False
        self.beats = Beats(defaults.HEARTBEAT_S, self.link)  # the worker's schedule

    def _join(self, calls: scale_api.WorkerCalls) -> None:
        info = calls.register(self.hello)
        self.beats.told(info.heartbeat, info.lost_after)
        calls.heartbeat(self.worker_id, self._held(), 0)
        with self.fleet.lock:
            self.fleet.joins += 1

    def _held(self) -> list[str]:
        with self.held_lock:
            return list(self.held)

    def _stopped(self) -> bool:
        return self.frozen or self.fleet.halt.is_set()

    def run(self, join_within: float) -> None:
        """The poll thread: join, start the pump, then poll."""
        try:
            with self.fleet.joining:
                self.link.open(join_within)
        except (ConnectError, MasterError, OSError) as exc:
            self.fleet.note_failure(exc)
            return
        with self.fleet.lock:
            self.fleet.joined += 1
        threading.Thread(target=self._guard(self._pump), daemon=True).start()
        self._guard(self._take_loop)()

    def _guard(self, loop: Any) -> Any:
        def run() -> None:
            try:
                loop()
            except (ConnectError, MasterError, OSError) as exc:
                if not self.fleet.halt.is_set():
                    self.fleet.note_failure(exc)
                self.frozen = True  # a worker whose thread failed stops (as the real one)
        return run

    def _pump(self) -> None:
        while not self._stopped():
            self._beat_if_due()
            try:  # (nothing to beat for before its first report: no timeout)
                task_ids = self.outcomes.get(
                    timeout=defaults.LONG_POLL_S if self.beats.pump_called else None)
            except queue.Empty:
                continue
            if len(self.held) > len(task_ids) or not self.outcomes.empty():
                # more in flight than its one process runs: the worker's batching window
                time.sleep(defaults.REPORT_LINGER_S)
            while not self.outcomes.empty():
                task_ids = task_ids + self.outcomes.get()
            results = [ResultMsg(t, Status.OK, NONE_BODY, "", self.name, 0.0, None)
                       for t in task_ids]
            self.beats.pump_called = True
            self.calls.report(self.worker_id, results, [])
            with self.held_lock:
                self.held.difference_update(task_ids)

    def _take_loop(self) -> None:
        """The worker's one poll: tasks up to what it holds, and cancel requests."""
        answers: dict[str, bool] = {}
        while not self._stopped():
            leased = self.calls.take(self.worker_id, WANT, self.beats.poll_wait(), answers)
            if not leased.beat:
                self._join(self.calls)
            else:
                self.beats.told(leased.beat)
            answers = dict.fromkeys(leased.asks, False)  # it ran (a simulated task ends at once)
            if not leased.tasks:
                continue
            now = time.time()
            ids = [t.task_id for t in leased.tasks]
            with self.held_lock:
                self.held.update(ids)
            fleet = self.fleet
            with fleet.lock:
                fleet.takes.update(dict.fromkeys(ids, now))
                freeze, fleet.freeze_next = fleet.freeze_next, False
            if freeze:  # keep the task, never call again: a worker that went silent
                self.frozen = True
                fleet.emit("frozen", task_id=ids[0], held=len(ids), worker=self.public_id,
                           t=now)
                return
            self.outcomes.put(ids)

    def _beat_if_due(self) -> None:
        """The pump's beat, once per heartbeat interval (as the worker's pump)."""
        if not self.beats.due(time.monotonic()):
            return
        with self.held_lock:
            digest = held_digest(self.held)
        polled = self.calls.beat(self.worker_id, Beat(held=digest, running=0))
        if not polled.beat:
            self._join(self.calls)
        elif polled.send_held:
            self.calls.heartbeat(self.worker_id, self._held(), 0)
        else:
            self.beats.told(polled.beat)
        self.beats.beaten(time.monotonic())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_sim",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True, metavar="HOST:PORT")
    parser.add_argument("--workers", type=int, required=True, help="idle workers")
    parser.add_argument("--active", type=int, default=0, help="workers that complete tasks")
    parser.add_argument("--active-queue", default="scale")
    parser.add_argument("--join-within", type=float, default=120.0)
    parser.add_argument("--reconnect-for", type=float, default=180.0)
    args = parser.parse_args(argv)
    address = parse_address(args.connect)
    if address[0] not in ("127.0.0.1", "localhost"):
        parser.error("the scale benchmark talks to 127.0.0.1 only")
    authkey = os.environ.get(defaults.ENV_AUTHKEY, "").encode()
    faulthandler.enable()  # a crash leaves where each thread was (the first 100) on stderr
    soft, hard = raise_nofile()
    threading.stack_size(STACK_KIB * 1024)
    fleet = Fleet(address, authkey, args.reconnect_for)
    fleet.emit("started", nofile=[soft, hard], pid=os.getpid())
    workers = [SimWorker(fleet, "default", False) for _ in range(args.workers)]
    workers += [SimWorker(fleet, args.active_queue, True) for _ in range(args.active)]
    begin = time.time()
    for worker in workers:
        threading.Thread(target=worker.run, args=(args.join_within,), daemon=True).start()
    deadline = time.monotonic() + args.join_within + 5
    while time.monotonic() < deadline:
        with fleet.lock:
            if fleet.joined + fleet.failed >= len(workers):
                break
        time.sleep(0.05)
    with fleet.lock:
        fleet.emit("joined", begin=begin, end=time.time(), joined=fleet.joined,
                   failed=fleet.failed, errors=fleet.errors, workers=len(workers),
                   threads=threading.active_count())
    for line in sys.stdin:  # bounded by the benchmark: it ends with quit or closes stdin
        command = line.strip()
        if command == "quit":
            break
        with fleet.lock:
            if command == "count":
                fleet.emit("count", joins=fleet.joins, joined=fleet.joined, failed=fleet.failed,
                           errors=fleet.errors, workers=len(workers),
                           frozen=sum(w.frozen for w in workers))
            elif command == "freeze":
                fleet.freeze_next = True
            elif command == "takes":
                fleet.emit("takes", takes=fleet.takes)
                fleet.takes = {}
    fleet.halt.set()
    sys.stdout.flush()
    os._exit(0)  # thousands of daemon threads blocked in long polls: no need to wait


if __name__ == "__main__":
    sys.exit(main())
