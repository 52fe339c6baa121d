"""The Python API: ``Client``, a ``concurrent.futures.Executor`` backed by a taskq master.

    submit(fn, *args) ── encode (caller's thread) ──► outgoing deque ──► sender thread
          │                                                  submit([batch]) ──► master
          ▼ TaskFuture (pending → running → done)                                 │
    set_running / set_result ◄── receiver thread ◄── fetch(ack, wait) ◄───────────┘
                                                      (results, and tasks that started)

Every task this client submitted and has not seen end is kept here (bytes included) until
its result arrives; when the link to the master breaks, the client reconnects, says hello
(the master resends unacknowledged results) and resubmits every task it had sent, before
any other call uses the new link (the master ignores ids it already has). A result that
arrives while the batch that carried its task is still being sent is acknowledged only once
that send is over, so a late resend can never bring a finished task back. A master restart
loses no future; a master that stays away for longer than ``reconnect_for`` fails them with
``ConnectError``; an error inside the master fails the futures it concerns with
``MasterError``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from typing import Any, overload

from taskq import defaults, logs, tracing
from taskq.client import durable
from taskq.client.cancel import CancelCalls
from taskq.client.deps import Dependencies, Found, Pins
from taskq.client.future import P, R, TaskFuture
from taskq.client.map import Mapping
from taskq.client.replay import Replays
from taskq.client.schedule import Scheduling
from taskq.client.shared import SharedState
from taskq.errors import (
    ConnectError,
    MasterError,
    PayloadTooLarge,
    ResultExpired,
    TaskqError,
    TaskRefused,
)
from taskq.net.connection import parse_address
from taskq.net.keys import resolve_authkey
from taskq.net.link import Link
from taskq.net.tls import TLS
from taskq.protocol import bodies, names, nesting
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import (
    DEFAULT_OPTIONS,
    MIRROR_FN,
    ResultMsg,
    Status,
    TaskMsg,
    TaskOptions,
)
from taskq.protocol.progress import Progress
from taskq.protocol.replies import EXPIRED_DETAIL, Fetched, MasterInfo

log = logs.get_logger(__name__)

FN_CACHE_SIZE = 256  # encodings of functions shipped by reference kept (bytes only)
FETCH_RETRIES = 5  # consecutive failed fetches (an error inside the master) before giving up
KEY_HINT = (f"check the authkey argument of Client, or {defaults.ENV_AUTHKEY}: it must be "
            f"the master's key")  # what a rejected key tells a Python user
KEY_HOW = f"pass Client(authkey=...) or set {defaults.ENV_AUTHKEY}"  # ... and a missing one


@dataclass(slots=True, eq=False)
class _Entry:
    future: TaskFuture[Any]
    msg: TaskMsg
    sent: bool = False
    sending: bool = False  # in a batch the sender has not finished sending
    dropped: bool = False  # cancelled before it was sent: never send it
    found: Found | None = None  # the futures among its arguments (its dependencies)
    mirror: bool = False  # another submitter's task, seen through ``Client.future``


class Client(Mapping, Scheduling, CancelCalls, SharedState, Dependencies, Replays, Executor):
    """Submit work to a taskq cluster; with no address, to a local one started for you.
    Its shared primitives (``lock``, ``semaphore``, ``dict``, ...) come from ``SharedState``;
    ``future(task_id)`` and the bookkeeping of dependencies from ``Dependencies``; ``cancel``
    (stopping running tasks too) from ``CancelCalls``; ``map`` from ``Mapping``;
    ``submit_after``, ``submit_at`` and ``schedule`` from ``Scheduling``; ``replay`` from
    ``Replays``."""

    def __init__(self, address: str | tuple[str, int] | None = None,
                 authkey: bytes | str | None = None, *, procs: int | None = None,
                 connect_for: float | None = None,
                 reconnect_for: float = defaults.RECONNECT_FOR_S,
                 tls: TLS | None = None) -> None:
        """``connect_for``: seconds to wait for a master that is not up yet (None: do not
        wait; no master there is a ``ConnectError`` at once); ``reconnect_for``: for one
        that went away; ``tls``: how to reach a master that speaks TLS (default: from
        TASKQ_TLS_*)."""
        self._cluster = None
        address = address or os.environ.get(defaults.ENV_ADDRESS)
        if address is None:
            from taskq.client.local import LocalCluster, say_started

            self._cluster = LocalCluster(procs=procs)
            address, key = self._cluster.address, self._cluster.authkey
            say_started(address)
        else:
            key = resolve_authkey(authkey, how=KEY_HOW)
        self.address = parse_address(address) if isinstance(address, str) else address
        self.outbox = names.new_client_claim()  # a secret: whoever holds it reaches the results
        self.public_outbox = names.outbox_name(self.outbox)  # what logs and task ids show
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._outgoing: deque[_Entry] = deque()
        self._wakeup = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._sent = threading.Condition(self._lock)  # a batch's submit call returned
        self._held_acks: set[str] = set()  # resolved while their task was being sent
        self._pins = Pins()  # results an unsent dependent needs: not acknowledged yet
        self._ready_acks: list[str] = []  # ... and that send is over: acknowledge them
        self._fn_cache: dict[tuple[str, str], bytes] = {}
        # (when, id) of recent results: told to a restarted master, which may not have them
        self._resolved: deque[tuple[float, str]] = deque(maxlen=defaults.RESOLVED_KEPT_MAX)
        self._closed = False
        self._failure: BaseException | None = None
        self._stopped = threading.Event()
        self.info: MasterInfo | None = None
        self._link = Link(self.address, key, reconnect_for=reconnect_for,
                          on_connect=self._on_connect, key_hint=KEY_HINT,
                          tls_settings=tls if tls is not None or self._cluster else TLS.from_env())
        self._remote = self._link.remote
        try:
            self._link.open(connect_for or 0.0)  # one attempt, unless asked to wait
        except BaseException:
            self._stop_cluster()
            raise
        self._threads = [threading.Thread(target=self._guard(loop), name=name, daemon=True)
                         for loop, name in ((self._send_loop, "taskq-send"),
                                            (self._receive_loop, "taskq-receive"))]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ Executor API

    @overload  # an async def's future holds what it returns once awaited (on the worker)
    def submit(self, fn: Callable[P, Coroutine[Any, Any, R]], /,
               *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]: ...
    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
               ) -> TaskFuture[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture[Any]:
        """Run ``fn(*args, **kwargs)`` on the cluster; pickling errors raise here, at once."""
        return self._submit(self._encode_fn(fn), args, kwargs,
                            getattr(fn, "taskq_options", None))

    def flush(self, timeout: float | None = None) -> None:
        """Return once every task submitted so far is journaled on the master (with an
        ``--in-memory`` master: once the master has it), so that this process may exit
        and none is lost; TimeoutError if that takes longer than ``timeout`` seconds."""
        deadline = durable.deadline_of(timeout)
        with self._lock:
            if not self._sent.wait_for(lambda: self._failure is not None or not (
                    self._outgoing or any(e.sending for e in self._entries.values())),
                    None if timeout is None else durable.left(deadline)):
                raise TimeoutError(f"the tasks were not all sent within {timeout:g} s")
            self._check_open_link()
        if not durable.until_journaled(self._remote, self.outbox, deadline):
            raise TimeoutError(f"the master did not journal the tasks within {timeout:g} s")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new task. ``cancel_futures`` cancels every task that has not started;
        the others still run and their futures get their results. With ``wait``, return
        once they all ended; without, the client lets go of the master by itself then."""
        with self._lock:
            first = not self._closed
            self._closed = True
            self._wakeup.notify_all()
            self._room.notify_all()
        if cancel_futures:
            self._cancel_all()
        if wait:
            self._close()
        elif first:
            threading.Thread(target=self._close, name="taskq-close", daemon=True).start()

    def release(self) -> None:
        """Let go of the master at once, waiting for nothing (its process exits)."""
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()
            self._room.notify_all()
        self._stopped.set()
        self._link.close()
        self._stop_cluster()

    def _enqueue_mirror(self, task_id: str) -> TaskFuture[Any]:
        """A future of another submitter's task: a task with no function that ends with a
        copy of that task's outcome (``Dependencies.future``)."""
        msg = TaskMsg(f"{self.public_outbox}-{next(self._ids)}", self.outbox, MIRROR_FN, b"",
                      DEFAULT_OPTIONS, deps=(task_id,))
        mirror = _Entry(TaskFuture(self, msg.task_id), msg, mirror=True)
        self._enqueue(mirror, block=True)
        return mirror.future

    # ------------------------------------------------------------------ submitting

    def _encode_fn(self, fn: Callable[..., Any]) -> bytes:
        """A callable's encoding, as it is now: reused only for functions that travel by
        reference (their encoding cannot change); anything with state is encoded afresh."""
        key = bodies.reference_key(fn)
        if key is None:
            return bodies.encode_function(fn)
        blob = self._fn_cache.get(key)
        if blob is None:
            blob = bodies.encode_function(fn)
            if len(self._fn_cache) >= FN_CACHE_SIZE:
                self._fn_cache.clear()
            self._fn_cache[key] = blob
        return blob

    def _submit(self, fn: bytes, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: TaskOptions | None) -> TaskFuture[Any]:
        entry = self._prepare(fn, args, kwargs, options)
        self._enqueue(entry, block=True)
        return entry.future

    def _prepare(self, fn: bytes, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: TaskOptions | None) -> _Entry:
        """A task encoded and checked, with its future; not queued yet."""
        self._check_open()
        found = Found()
        start = time.time_ns()  # a span's start, if this process traces
        try:
            body = bodies.encode_args(args, kwargs, found.reduce)
            msg = TaskMsg(f"{self.public_outbox}-{next(self._ids)}", self.outbox, fn, body,
                          self._options(options, found), deps=tuple(found.ids))
            limit = self.info.max_payload if self.info else None
            if limit is not None and msg.size > limit:
                raise PayloadTooLarge(f"task is {msg.size} bytes, over the master's "
                                      f"--max-payload of {limit} bytes; send a path or URL "
                                      f"instead of the data")
        except BaseException:
            found.release()
            raise
        if tracing.active():  # the application traces: a span, its traceparent in the task
            from taskq.client.tracing import submitted

            submitted(msg, found, start)
        return _Entry(TaskFuture(self, msg.task_id), msg, found=found if found.ids or
                      found.failure else None)

    def _options(self, options: TaskOptions | None, found: Found) -> TaskOptions:
        """A task's options, with the dependencies it lets fail and the task submitting it
        (inside a task, with ``taskq.current_client()``)."""
        options = options or DEFAULT_OPTIONS
        allowed, parent = found.allow_failed(), nesting.current_task_id()
        if allowed or parent:
            options = replace(options, allow_failed=allowed, parent=parent)
        return options

    def _enqueue(self, entry: _Entry, block: bool) -> bool:
        """Queue a prepared task for sending; without ``block``, False when the queue is
        full (the caller waits elsewhere, then calls again with ``block``)."""
        msg = entry.msg
        if entry.found is not None and entry.found.failed(entry.future):
            return True  # a dependency failed already: it never runs, nor is sent
        with self._lock:
            if len(self._outgoing) >= defaults.CLIENT_MAX_UNSENT:  # backpressure
                if not block:
                    return False
                self._room.wait_for(lambda: len(self._outgoing) < defaults.CLIENT_MAX_UNSENT
                                    or self._closed or self._failure is not None)
            try:
                self._check_open()
            except BaseException:
                if entry.found is not None:
                    entry.found.release()
                raise
            self._entries[msg.task_id] = entry
            self._outgoing.append(entry)
            if len(self._outgoing) == 1 or len(self._entries) == 1:
                self._wakeup.notify_all()
        return True

    def _check_open(self) -> None:
        if self._closed:  # first: a shut-down client says so, whatever its link did after
            raise RuntimeError("cannot submit after shutdown")
        self._check_open_link()

    def _check_open_link(self) -> None:
        if self._failure is not None:
            raise ConnectError(f"this client can no longer reach the master: {self._failure}")

    # ------------------------------------------------------------------ threads

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        """No thread of the client dies silently: its futures fail with the reason."""
        def run() -> None:
            try:
                loop()
            except TaskqError as exc:  # the master is gone, or failed: told to every future
                self._fail_all(exc)
            except BaseException as exc:
                log.exception("client_thread_failed", outbox=self.public_outbox)
                self._fail_all(TaskqError(f"the client's link to the master failed: {exc!r}"))
        return run

    def _on_connect(self, remote: BrokerAPI) -> None:
        """(Re)connected: results come again, and every task sent before goes again now,
        before any other call uses the new link (the master ignores the ones it has)."""
        with self._lock:
            horizon = time.monotonic() - defaults.RESOLVED_KEPT_S
            ended = [task_id for when, task_id in self._resolved if when >= horizon]
        self.info = remote.hello(self.outbox, ended=ended)
        with self._lock:
            resend = [e.msg for e in self._entries.values() if e.sent]
        if resend:
            log.info("resubmitting", count=len(resend), outbox=self.public_outbox)
        for start in range(0, len(resend), defaults.SUBMIT_BATCH):
            batch = resend[start:start + defaults.SUBMIT_BATCH]
            while batch:
                batch = batch[remote.submit(batch, durable=False):]

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                self._wakeup.wait_for(lambda: self._outgoing or self._done())
                if not self._outgoing:
                    return
                batch, doomed = self._take_batch()
                self._room.notify_all()
            if doomed:
                self._fail(doomed)
            if batch:
                self._send(batch)
            del batch, doomed  # hold nothing of a sent batch while idle

    def _take_batch(self) -> tuple[list[_Entry], list[tuple[_Entry, BaseException]]]:
        """Pop the next batch to send (lock held): bounded in count and in bytes; and the
        tasks that fail unsent (a dependency of theirs was cancelled before it was sent)."""
        batch: list[_Entry] = []
        doomed: list[tuple[_Entry, BaseException]] = []
        size = 0
        outgoing = self._outgoing
        while outgoing and len(batch) < defaults.SUBMIT_BATCH and size < defaults.BATCH_BYTES:
            entry = outgoing.popleft()
            if entry.dropped or entry.future.done():
                continue
            exc = self._pins.doomed(entry.msg.task_id, entry.msg.deps) if self._pins.gone \
                else None
            if exc is not None:
                entry.dropped = True
                doomed.append((entry, exc))
                continue
            entry.sent = entry.sending = True
            batch.append(entry)
            size += entry.msg.size
        return batch, doomed

    def _send(self, batch: list[_Entry]) -> None:
        """Send until the master has taken the whole batch (it takes less when full)."""
        try:
            rest = batch
            while rest:
                # this client holds every task until it ends and resubmits after a reconnect,
                # so the master need not journal a batch before it answers
                rest = rest[self._remote.submit([e.msg for e in rest], durable=False):]
        except MasterError as exc:
            log.warning("submit_failed", outbox=self.public_outbox, error=str(exc))
            self._fail([(e, exc) for e in batch])
        finally:
            for entry in batch:
                if entry.found is not None:
                    entry.found.release()  # the master has them: their deps are its to keep
            with self._lock:
                self._sent_over(batch)

    def _sent_over(self, batch: list[_Entry]) -> None:
        """A send (or a replay) is over (lock held): acknowledge what arrived meanwhile."""
        for entry in batch:
            entry.sending = False
        self._sent.notify_all()
        held = [e.msg.task_id for e in batch if e.msg.task_id in self._held_acks]
        self._held_acks.difference_update(held)
        self._ready_acks += [t for t in held if not self._pins.hold(t)]
        if held and self._closed:  # the receiving loop waits for these before it ends
            self._wakeup.notify_all()

    def _new_task_id(self) -> str:
        return f"{self.public_outbox}-{next(self._ids)}"

    def _track(self, task_id: str) -> TaskFuture[Any]:
        """A future for a task the master is making for this client (``Replays``)."""
        entry = _Entry(TaskFuture(self, task_id), TaskMsg(task_id, self.outbox, MIRROR_FN,
                                                          b""), sending=True)
        with self._lock:
            self._check_open()
            self._entries[task_id] = entry
            self._wakeup.notify_all()
        return entry.future

    def _tracked(self, task_id: str, msg: TaskMsg | None) -> None:
        """The master made the task (``msg``, kept as sent) or did not (None)."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return
            if msg is None:
                del self._entries[task_id]
            else:
                entry.msg, entry.sent = msg, True
            self._sent_over([entry])

    def _receive_loop(self) -> None:
        ack: list[str] = []
        failures = 0
        while True:
            with self._lock:  # closed: the acks a send still holds back go before it ends
                self._wakeup.wait_for(lambda: self._entries or (self._closed and (
                    self._ready_acks or not self._held_acks)))
                ack += self._ready_acks
                self._ready_acks = []
                if self._done() and not ack and not self._held_acks:
                    return
                wait = defaults.LONG_POLL_S if self._entries else 0
            try:
                fetched = self._remote.fetch(self.outbox, ack, max_n=defaults.RESULT_BATCH,
                                               wait=wait)
            except MasterError as exc:
                failures += 1
                log.warning("fetch_failed", outbox=self.public_outbox, error=str(exc))
                if failures >= FETCH_RETRIES:
                    raise
                self._stopped.wait(0.1 * 2 ** failures)
                continue
            failures = 0
            ack = self._resolve(fetched)
            del fetched  # hold no result while waiting for the next ones

    def _done(self) -> bool:
        """Closed, and every task ended (lock held)."""
        return self._closed and not self._entries

    def _resolve(self, fetched: Fetched) -> list[str]:
        """Settle futures; returns the results to acknowledge now."""
        with self._lock:
            starting = [e for e in map(self._entries.get, fetched.started) if e is not None]
            self._note_progress(fetched.progress)
            ack: list[str] = []
            settled: list[tuple[ResultMsg, _Entry]] = []
            for result in fetched.results:
                entry = self._entries.pop(result.task_id, None)
                if entry is not None and entry.sending:
                    self._held_acks.add(result.task_id)
                elif not (self._pins.count and self._pins.hold(result.task_id)):
                    # (else an unsent dependent needs it on the master first)
                    ack.append(result.task_id)
                if entry is not None:
                    settled.append((result, entry))
            if settled:
                now = time.monotonic()
                self._resolved.extend((now, r.task_id) for r, _ in settled)
            if settled and self._done():
                self._wakeup.notify_all()
        for entry in starting:
            entry.future._begin()
        for result, entry in settled:
            self._settle(entry.future, result, entry.mirror)
        return ack

    def _note_progress(self, progress: dict[str, tuple[Any, ...]]) -> None:
        """Running tasks' latest progress, onto their futures (lock held)."""
        for task_id, value in progress.items():
            entry = self._entries.get(task_id)
            if entry is not None:
                entry.future._progress = Progress(*value)

    @staticmethod
    def _settle(future: TaskFuture[Any], result: ResultMsg, mirror: bool = False) -> None:
        if result.status is Status.CANCELLED and future._mark_cancelled(result.detail):
            return
        if not future._begin():
            return
        try:
            future.set_result(bodies.decode_result(result))
        except BaseException as exc:
            if mirror and result.status is Status.DEPENDENCY_FAILED and exc.__cause__:
                exc = exc.__cause__  # a mirror's outcome is its task's own
                if isinstance(exc, TaskRefused) and str(exc).startswith(EXPIRED_DETAIL):
                    exc = ResultExpired(str(exc))
            future.set_exception(exc)

    def _fail(self, failed: list[tuple[_Entry, BaseException]]) -> None:
        for entry, _ in failed:
            if entry.found is not None:
                entry.found.release()
        with self._lock:
            for entry, _ in failed:
                self._entries.pop(entry.msg.task_id, None)
            self._wakeup.notify_all()
        for entry, exc in failed:
            if entry.future._begin():
                entry.future.set_exception(exc)

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
            entries = list(self._entries.values())
            self._outgoing.clear()
            self._room.notify_all()
        self._fail([(e, exc) for e in entries])

    # ------------------------------------------------------------------ closing

    def _close(self) -> None:
        """Wait for every task to end, then let go of the master and the local cluster."""
        with self._lock:
            futures = [e.future for e in self._entries.values()]
        futures_wait(futures)
        for thread in self._threads:
            thread.join(timeout=defaults.LONG_POLL_S + defaults.CALL_TIMEOUT_S)
        self._stopped.set()
        self._link.close()
        self._fail_all(ConnectError("the client was shut down before the task ended"))
        self._stop_cluster()

    def _stop_cluster(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
