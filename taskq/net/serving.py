"""The master's connections, served from one epoll loop and a fixed pool of threads,
however many peers are connected.

A connection that passed its handshake waits in the loop's selector (epoll) and holds no
thread. When a request arrives and the socket already holds all of it (a small one: up to
QUICK_BYTES), the loop thread reads it; a call that never blocks (``Pending.quick``: a
take, a report, a fetch, a heartbeat...) runs there and then, and its reply, if small, goes
out from there too: the hot path pays no thread hand-off. Anything else (a big request or
reply, a call that waits for the journal, TLS) goes to the request pool, which reads the
request, runs the call and sends the reply, then gives the connection back. A long-poll
that finds nothing to return (a worker's ``take``, a client's ``fetch``)
does not keep a thread either: it *parks* on the ``Signal`` it waits for. A state change
that notifies the signal runs the call again (on the loop thread if a call served there
woke it, once that call is done and before its own reply goes out: a submit's woken
``take`` and a report's woken ``fetch`` are on a task's path, their replies are not), and
so does its deadline. A call whose work is done but
whose reply must wait (a worker's leases, until the journal has them) parks its reply the
same way (``answer_later``)::

    accept ──► handshake pool (TLS, key, versions) ──► loop.add(conn)
    loop: epoll ── readable ─┬─ whole, small, quick: recv ─ call ─ send (loop thread)
                             └─ else ──► request pool: recv ─ call ─ send ──► loop.add(conn)
                                           └─ nothing yet: park(signal, wait) ─┐
    signal.notify(n) (a state change) ──► up to n parked calls run again ◄────┤
    a parked call's deadline (the loop's timer heap) ──► it runs again, answers ◄┘

Parking is opt-in per call (``Pending.parkable``) and per wait (``park``): a call served
anywhere else (a test calling the broker directly) waits on the condition as before.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import queue
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from taskq import logs
from taskq.protocol import frames

log = logs.get_logger(__name__)

# Threads that run requests: enough for the calls that still block (a durable submit waits
# for its journal commit, a cancel for a worker's answer), never one per connection.
REQUEST_THREADS = 16
# Requests and replies up to this size are read and sent by the loop thread itself when the
# call never blocks (``Pending.quick``): no hand-off to a request thread on the hot path.
QUICK_BYTES = 16 * 1024
# Threads that run handshakes (TLS, the key challenge, the version hello), apart from the
# request threads so that slow or silent new peers never hold up the connected ones.
HANDSHAKE_THREADS = 4


class Parked(BaseException):
    """Raised by ``park``: the call waits in the loop, holding no thread (a BaseException, so
    that no ``except Exception`` on its way out takes it for a failure)."""


@dataclass(eq=False)
class Pending:
    """A call being served: what to run, where to answer, and (once parked) until when."""

    loop: Loop
    conn: Any
    run: Callable[[], Any]  # runs the call (again): returns its reply value
    parkable: bool
    retry: Callable[[], Any] | None = None  # how to run it again (default: ``run``)
    # turns a function's value (or exception) into the reply, as ``run`` does its own
    reply: Callable[[Callable[[], Any]], Any] = field(default=lambda call: call())
    quick: bool = False  # never blocks: may run on the loop thread
    deadline: float | None = None  # set when it first parks
    key: int = field(default_factory=itertools.count().__next__)


_current = threading.local()


def parking() -> bool:
    """Is the running call served by the loop and allowed to park?"""
    pending = getattr(_current, "pending", None)
    return pending is not None and pending.parkable


def resumed() -> bool:
    """Is the running call one that parked and now runs again (from its start)?"""
    pending = getattr(_current, "pending", None)
    return pending is not None and pending.deadline is not None


def park(signal: Signal, wait: float, key: Hashable = None) -> None:
    """Park the running call on ``signal`` (its lock held) for up to ``wait`` s from when it
    first parked, and raise ``Parked``; return instead once that time is up, so that the
    call answers with what it has. With ``key`` (a worker's id), ``signal.notify_keys``
    wakes it alone."""
    pending: Pending = _current.pending
    now = time.monotonic()
    if pending.deadline is None:
        pending.deadline = now + wait
    if now >= pending.deadline:
        return
    signal.parked[pending.key] = pending
    if key is not None:
        signal.keyed[key] = pending.key  # one parked call per key (a worker's one poll)
    pending.loop.at(pending.deadline, signal, pending)
    pending.loop.watch(signal, pending)
    raise Parked


def name_peer(name: str) -> int | None:
    """Name who calls on the running call's connection (a worker's id): the server is told
    the name and the connection's number (returned here) when that connection ends
    (``Loop``'s ``close``), so that the end of an older connection of the same peer can be
    told from its current one's. None outside the loop."""
    pending = getattr(_current, "pending", None)
    if pending is None:
        return None
    conn = pending.conn
    if conn.peer is None or conn.peer[0] != name:
        conn.peer = (name, next(_connection_numbers))
    return int(conn.peer[1])


_connection_numbers = itertools.count(1)


@contextlib.contextmanager
def answering_here() -> Iterator[None]:
    """Within: the quick calls this thread's notifications wake run in this thread once the
    block is done (its locks released), not on a request thread: one hand-off less for a
    reply that waited on what this thread did (the journal's writer, after a commit)."""
    woken: list[Pending] = []
    _current.woken = woken
    try:
        yield
    finally:
        _current.woken = None
        for pending in woken:
            pending.loop.answer_here(pending)


def answer_later(signal: Signal, wait: float, then: Callable[[], Any]) -> None:
    """The running call did its work, but its reply must wait for a state change (the
    journal committing what it did): park it on ``signal`` for up to ``wait`` s from now,
    and run ``then`` instead of the call each time it is woken. ``then`` answers, or parks
    again (its deadline stays); raises ``Parked``."""
    pending: Pending = _current.pending
    pending.retry = functools.partial(pending.reply, then)
    pending.deadline = None
    park(signal, wait)


class Signal(threading.Condition):
    """A condition whose notifications also wake the calls parked on it (FIFO, as many as
    ``notify`` says)."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.parked: dict[int, Pending] = {}  # in the order they parked
        self.keyed: dict[Hashable, int] = {}  # the call parked under a key (may have left)

    def notify_keys(self, keys: Iterable[Hashable]) -> None:
        """Wake the threads that wait (they check for themselves) and the calls parked
        under these keys, no other."""
        super().notify_all()
        for key in keys:
            pending = self.parked.pop(self.keyed.pop(key, -1), None)
            if pending is not None:
                pending.loop.rerun(pending)

    def notify(self, n: int = 1) -> None:
        super().notify(n)
        if self.parked:
            for key in list(itertools.islice(self.parked, n)):
                pending = self.parked.pop(key)
                pending.loop.rerun(pending)

    def notify_all(self) -> None:
        super().notify_all()
        self.keyed.clear()
        if self.parked:
            woken, self.parked = list(self.parked.values()), {}
            for pending in woken:
                pending.loop.rerun(pending)


class Loop:
    """The epoll loop, its timers and its request threads; see the module docstring.

    A connection is armed one-shot: the loop sees one request's arrival, hands the
    connection to a request thread and forgets it; the thread that answered re-arms it with
    one ``epoll_ctl``, so no call wakes the loop but to say a request came."""

    def __init__(self, serve: Callable[[Any], Pending | None],
                 close: Callable[[Any], None],
                 waiting: Callable[[Any], bool] | None = None) -> None:
        self._serve = serve  # reads one request from a connection: the call to run
        self._close = close  # forgets a connection that ended
        self._waiting = waiting  # is a whole small request there (read without waiting)?
        self._here: deque[Pending] = deque()  # quick calls to run again on the loop thread
        self._running_here = False  # ... being run now (in order, by one flat loop)
        self._watched: dict[int, tuple[Signal, int]] = {}  # parked calls' descriptors
        self._ident = 0  # the loop thread's
        self._epoll = select.epoll()
        self._conns: dict[int, Any] = {}  # by descriptor: what an event names
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Signal, Pending]] = []
        self._order = itertools.count()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"taskq-request-{i}",
                                          daemon=True) for i in range(REQUEST_THREADS)]
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="taskq-loop", daemon=True)

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        self._thread.join(5)
        for _ in self._workers:
            self._jobs.put(None)
        for conn in list(self._conns.values()):
            self._close(conn)
        self._conns.clear()
        self._epoll.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ------------------------------------------------------------------ any thread

    def add(self, conn: Any) -> None:
        """Serve this connection's next request when it arrives."""
        try:
            fd = conn.fileno()
            self._watched.pop(fd, None)
            self._conns[fd] = conn
            try:
                self._epoll.modify(fd, _ARMED)
            except FileNotFoundError:  # new here (or its descriptor was closed and reused)
                self._epoll.register(fd, _ARMED)
        except (OSError, ValueError):  # closed meanwhile
            self._close(conn)

    def watch(self, signal: Signal, pending: Pending) -> None:
        """While a call is parked, see its peer hang up: a peer that is gone (a killed
        worker) must not be handed what a live one would take (the lease a parked take
        would get when woken)."""
        try:
            fd = pending.conn.fileno()
            self._watched[fd] = (signal, pending.key)
            self._epoll.modify(fd, _HUNG_UP)
        except (OSError, ValueError):
            pass  # closed meanwhile: the reply fails, and forgets it

    def at(self, when: float, signal: Signal, pending: Pending) -> None:
        """Run a parked call again at ``when`` (if it is still parked on ``signal``)."""
        with self._lock:
            first = not self._timers or when < self._timers[0][0]
            # a call parked again keeps its deadline: the sequence number breaks the tie
            heapq.heappush(self._timers, (when, next(self._order), signal, pending))
        if first:  # the loop sleeps until the earliest: tell it of an earlier one
            self._wake()

    def rerun(self, pending: Pending) -> None:
        """Run a call again (it was parked and something changed, or its time came): a
        quick one woken on the loop thread runs there, once the call that woke it is done;
        one woken within ``answering_here``, in the thread that woke it, once it is done."""
        if self._stopping:
            return
        if pending.quick and threading.get_ident() == self._ident:
            self._here.append(pending)
        elif pending.quick and getattr(_current, "woken", None) is not None:
            _current.woken.append(pending)
        else:
            self._jobs.put(functools.partial(self._answer, pending, True))

    def answer_here(self, pending: Pending) -> None:
        """Run a woken quick call in this thread (``answering_here``): a failure is its
        connection's end, as on the loop thread."""
        self._guarded(pending.conn, functools.partial(self._answer, pending, True))

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    # ------------------------------------------------------------------ the loop thread

    def _run(self) -> None:
        self._ident = threading.get_ident()
        while not self._stopping:
            timeout = self._due()
            self._run_here()
            try:
                events = self._epoll.poll(-1 if timeout is None else timeout)
            except OSError:  # closed by stop()
                return
            for fd, _ in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    continue
                conn = self._conns.get(fd)
                if conn is not None:
                    self._guarded(conn, functools.partial(self._event, fd, conn))

    def _event(self, fd: int, conn: Any) -> None:
        """A connection's descriptor is ready: a request, or a parked call's peer left."""
        watched = self._watched.pop(fd, None)
        if watched is not None:  # its call is parked: the peer hung up
            if self._unpark(*watched):  # (else it is running again: its reply fails)
                log.debug("connection_ended", reason="the peer left a parked call")
                self._forget(conn)
            return
        if self._waiting is not None and self._waiting(conn):
            self._request(conn, here=True)  # small and whole: no thread hand-off
            self._run_here()
        else:
            self._jobs.put(functools.partial(self._request, conn))

    def _run_here(self) -> None:
        """Run the woken quick calls, in the order they were woken; the calls they wake in
        turn join the same queue (one flat loop, however many a call wakes at once)."""
        if self._running_here:
            return
        self._running_here = True
        try:
            while self._here:
                pending = self._here.popleft()
                self._guarded(pending.conn, functools.partial(self._answer, pending, True))
        finally:
            self._running_here = False

    def _guarded(self, conn: Any, step: Callable[[], None]) -> None:
        """Run one step of a connection on the loop thread: a failure is that connection's
        end, never the loop's."""
        try:
            step()
        except Exception as exc:
            log.error("connection_failed", error=repr(exc))
            self._forget(conn)

    def _due(self) -> float | None:
        """Rerun the parked calls whose time came; the seconds until the next one."""
        now = time.monotonic()
        due = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers))
            after = max(0.0, self._timers[0][0] - now) if self._timers else None
        for _, _, signal, pending in due:  # outside our lock: parking holds the signal's
            if self._unpark(signal, pending.key):
                self.rerun(pending)
        return after

    @staticmethod
    def _unpark(signal: Signal, key: int) -> bool:
        with signal:  # the signal's lock is the state's: notify pops under it too
            return signal.parked.pop(key, None) is not None

    # ------------------------------------------------------------------ request threads

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def _forget(self, conn: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conns.pop(conn.fileno(), None)
        self._close(conn)

    def _request(self, conn: Any, here: bool = False) -> None:
        try:
            pending = self._serve(conn)
        except Exception as exc:  # the peer went away, or sent what cannot be read
            log.debug("connection_ended", reason=repr(exc))
            self._forget(conn)
            return
        if pending is None:
            return
        if here and not pending.quick:  # it may block (a journal commit): not on the loop
            self._jobs.put(functools.partial(self._answer, pending, False))
        else:
            self._answer(pending, False)

    def _answer(self, pending: Pending, again: bool) -> None:
        _current.pending = pending
        try:
            run = pending.retry if again and pending.retry is not None else pending.run
            reply = run()
        except Parked:
            return
        finally:
            _current.pending = None
        conn = pending.conn
        if threading.get_ident() != self._ident:
            self._send(conn, functools.partial(conn.send, reply))
            return
        parts = frames.pack(reply)  # on the loop: a big reply is sent by a request thread
        send = functools.partial(self._send, conn, functools.partial(conn.send_packed, parts))
        if frames.packed_size(parts) > QUICK_BYTES:
            self._jobs.put(send)
        else:
            self._run_here()  # first the calls this one woke (unless it is one of them)
            send()

    def _send(self, conn: Any, send: Callable[[], None]) -> None:
        """Send a reply, then wait for the connection's next request."""
        try:
            send()
        except Exception:  # the peer went away while its call waited
            self._forget(conn)
            return
        pending_tls = getattr(getattr(conn, "tls_socket", None), "pending", None)
        if pending_tls is not None and pending_tls():  # its next request is already read
            self._jobs.put(functools.partial(self._request, conn))
        else:
            self.add(conn)


_ARMED = select.EPOLLIN | select.EPOLLONESHOT  # one request's arrival, then disarmed
_HUNG_UP = select.EPOLLRDHUP | select.EPOLLIN | select.EPOLLONESHOT  # a parked call's peer
