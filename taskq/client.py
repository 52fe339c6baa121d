"""The Python API: ``Client``, a ``concurrent.futures.Executor`` backed by a taskq master.

    submit(fn, *args) ── encode (caller's thread) ──► outgoing deque ──► sender thread
          │                                                  submit([batch]) ──► master
          ▼ TaskFuture (pending)                                                  │
    set_result / set_exception ◄── receiver thread ◄── fetch(ack, wait) ◄─────────┘

Every task this client submitted and has not seen end is kept here (bytes included) until
its result arrives; when the link to the master breaks, the client reconnects, says hello
(the master resends unacknowledged results) and resubmits them all (the master ignores ids
it already has). So a master restart loses no future; a master that stays away for longer
than ``reconnect_for`` fails them with ``ConnectError``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from functools import partial
from typing import Any

from taskq import defaults, logs, wire
from taskq.auth import resolve_authkey
from taskq.errors import ConnectError, PayloadTooLarge
from taskq.options import TaskFunction
from taskq.transport import BrokerProxy, Link, parse_address
from taskq.wire import DEFAULT_OPTIONS, MasterInfo, ResultMsg, TaskMsg, TaskOptions

log = logs.get_logger("taskq.client")


class TaskFuture(Future):  # type: ignore[type-arg]
    """A Future for one task; ``cancel()`` removes the task from the master if it has not
    started (and returns False if it has, as ``concurrent.futures`` does)."""

    def __init__(self, client: Client, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self._client = client

    def cancel(self) -> bool:
        with self._condition:
            if self.done() or self.running():
                return self.cancelled()
        removed = self._client._cancel(self.task_id)
        with self._condition:
            if removed:
                return super().cancel()
            self._begin()
            return self.cancelled()

    def _begin(self) -> bool:
        """Pending -> running, so a result can be set; False if it was cancelled."""
        with self._condition:
            if self.running():
                return True
            if self.done():
                return False
            return self.set_running_or_notify_cancel()


@dataclass(slots=True)
class _Entry:
    future: TaskFuture
    msg: TaskMsg
    sent: bool = False


def _run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [fn(*args) for args in chunk]


def _chunks(iterables: tuple[Iterable[Any], ...], size: int) -> Iterator[list[tuple[Any, ...]]]:
    it = zip(*iterables, strict=False)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Client(Executor):
    """Submit work to a taskq cluster; with no address, to a local one started for you."""

    def __init__(self, address: str | tuple[str, int] | None = None,
                 authkey: bytes | str | None = None, *, procs: int | None = None,
                 connect_for: float = defaults.CONNECT_TIMEOUT_S * 2,
                 reconnect_for: float = defaults.RECONNECT_FOR_S) -> None:
        self._cluster = None
        address = address or os.environ.get(defaults.ENV_ADDRESS)
        if address is None:
            from taskq.local import LocalCluster

            self._cluster = LocalCluster(procs=procs)
            address, key = self._cluster.address, self._cluster.authkey
        else:
            key = resolve_authkey(authkey)
        self.address = parse_address(address) if isinstance(address, str) else address
        self.outbox = f"{defaults.CLIENT_OUTBOX_PREFIX}{uuid.uuid4().hex}"
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._outgoing: deque[_Entry] = deque()
        self._wakeup = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._fn_cache: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()
        self._closed = False
        self.info: MasterInfo | None = None
        self._link = Link(self.address, key, reconnect_for=reconnect_for,
                          on_connect=self._on_connect)
        try:
            self._link.open(connect_for)
        except BaseException:
            self._stop_cluster()
            raise
        self._threads = [threading.Thread(target=loop, name=name, daemon=True)
                         for loop, name in ((self._send_loop, "taskq-send"),
                                            (self._receive_loop, "taskq-receive"))]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ Executor API

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` on the cluster; pickling errors raise here, at once."""
        return self._submit(fn, args, kwargs, getattr(fn, "taskq_options", None))

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        """Like ``Executor.map``; ``chunksize`` items travel (and run) as one task."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        options = getattr(fn, "taskq_options", None)
        runner = partial(_run_chunk, fn.fn if isinstance(fn, TaskFunction) else fn)

        def submit_chunk(chunk: list[tuple[Any, ...]]) -> TaskFuture:
            return self._submit(runner, (chunk,), {}, options)

        fs = [submit_chunk(c) for c in _chunks(iterables, chunksize)]
        return itertools.chain.from_iterable(self._ordered(fs, timeout))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop; with wait, first let every submitted task end."""
        if cancel_futures:
            with self._lock:
                futures = [e.future for e in self._entries.values()]
            for future in futures:
                future.cancel()
        if wait:
            with self._lock:
                futures = [e.future for e in self._entries.values()]
            futures_wait(futures)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wakeup.notify_all()
        for thread in self._threads:
            thread.join(timeout=defaults.LONG_POLL_S + defaults.CALL_TIMEOUT_S)
        self._link.close()
        self._fail_all(ConnectError("the client was shut down before the task ended"))
        self._stop_cluster()

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _ordered(fs: list[TaskFuture], timeout: float | None) -> Iterator[Any]:
        end = None if timeout is None else time.monotonic() + timeout
        for i, future in enumerate(fs):
            try:
                yield future.result(None if end is None else end - time.monotonic())
            except BaseException:
                for rest in fs[i:]:
                    rest.cancel()
                raise

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                options: TaskOptions | None) -> TaskFuture:
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        msg = TaskMsg(f"{self.outbox}-{next(self._ids)}", self.outbox, self._encode_fn(fn),
                      wire.encode_args(args, kwargs), options or DEFAULT_OPTIONS)
        limit = self.info.max_payload if self.info else None
        if limit is not None and msg.size > limit:
            raise PayloadTooLarge(f"task is {msg.size} bytes, over the master's --max-payload "
                                  f"of {limit} bytes; send a path or URL instead of the data")
        future = TaskFuture(self, msg.task_id)
        entry = _Entry(future, msg)
        with self._lock:
            if len(self._outgoing) >= defaults.CLIENT_MAX_UNSENT:  # backpressure
                self._room.wait_for(lambda: len(self._outgoing) < defaults.CLIENT_MAX_UNSENT
                                    or self._closed)
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            self._entries[msg.task_id] = entry
            self._outgoing.append(entry)
            if len(self._outgoing) == 1 or len(self._entries) == 1:
                self._wakeup.notify_all()
        return future

    def _encode_fn(self, fn: Callable[..., Any]) -> bytes:
        cached = self._fn_cache.get(id(fn))
        if cached is not None and cached[0] is fn:
            return cached[1]
        blob = wire.encode_function(fn)
        self._fn_cache[id(fn)] = (fn, blob)
        if len(self._fn_cache) > 64:
            self._fn_cache.popitem(last=False)
        return blob

    def _cancel(self, task_id: str) -> bool:
        """Remove a task that has not started; False if it runs (or already ended)."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return False
            if not entry.sent:
                del self._entries[task_id]
                return True
        outcome = self._link.call("cancel", [task_id])
        if task_id in outcome.cancelled:
            with self._lock:
                self._entries.pop(task_id, None)
            return True
        return False

    def _on_connect(self, proxy: BrokerProxy) -> None:
        """(Re)connected: results come again, and every task sent before goes again (the
        master ignores the ones it already has; the sender applies its backpressure)."""
        self.info = proxy.call("hello", self.outbox)
        with self._lock:
            resend = [e for e in self._entries.values() if e.sent]
            for entry in resend:
                entry.sent = False
            self._outgoing.extendleft(reversed(resend))
            self._wakeup.notify_all()
        if resend:
            log.info("resubmitting", count=len(resend), outbox=self.outbox)

    def _send_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    self._wakeup.wait_for(lambda: self._outgoing or self._closed)
                    if not self._outgoing:
                        return
                    batch = self._take_batch()
                    for entry in batch:
                        entry.sent = True
                    self._room.notify_all()
                if batch:
                    self._send(batch)
        except ConnectError as exc:
            self._fail_all(exc)

    def _take_batch(self) -> list[_Entry]:
        """Pop the next batch to send (lock held): bounded in count and in bytes."""
        batch: list[_Entry] = []
        size = 0
        outgoing = self._outgoing
        while outgoing and len(batch) < defaults.SUBMIT_BATCH and size < defaults.BATCH_BYTES:
            entry = outgoing.popleft()
            if not entry.future.done():
                batch.append(entry)
                size += entry.msg.size
        return batch

    def _send(self, batch: list[_Entry]) -> None:
        """Send until the master has taken the whole batch (it takes less when full)."""
        while batch:
            # this client holds every task until it ends and resubmits after a reconnect,
            # so the master need not journal a batch before it answers
            taken = self._link.call("submit", [e.msg for e in batch], False)
            batch = batch[taken:]
            if batch and self._closed and not self._entries:
                return

    def _receive_loop(self) -> None:
        ack: list[str] = []
        try:
            while True:
                with self._lock:
                    self._wakeup.wait_for(lambda: self._entries or self._closed)
                    if self._closed and not ack:
                        return
                wait = 0 if self._closed else defaults.LONG_POLL_S
                results: list[ResultMsg] = self._link.call(
                    "fetch", self.outbox, ack, defaults.RESULT_BATCH, wait)
                ack = [r.task_id for r in results]
                self._resolve(results)
        except ConnectError as exc:
            self._fail_all(exc)

    def _resolve(self, results: list[ResultMsg]) -> None:
        with self._lock:
            entries = [self._entries.pop(r.task_id, None) for r in results]
        for result, entry in zip(results, entries, strict=True):
            if entry is None or not entry.future._begin():
                continue
            try:
                entry.future.set_result(wire.decode_result(result))
            except BaseException as exc:
                entry.future.set_exception(exc)

    def _fail_all(self, exc: Exception) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
            self._outgoing.clear()
            self._wakeup.notify_all()
        for entry in entries:
            if entry.future._begin():
                entry.future.set_exception(exc)

    def _stop_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
