"""The loop thread serves a small, whole request of a call that never blocks itself; a
partial, big or blocking one goes to a request thread (``taskq.net.serving``)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import wait_for

from taskq.net import serving
from taskq.net.connection import Connection
from taskq.protocol import frames


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    ours, theirs = socket.socketpair()
    conn = Connection(ours.detach())
    try:
        yield conn, theirs
    finally:
        conn.close()
        theirs.close()


def _frame(obj: Any) -> bytes:
    parts = frames.pack(obj)
    return frames.frame(frames.packed_size(parts)) + b"".join(bytes(p) for p in parts)


def test_a_request_is_waiting_only_when_whole_and_small(
        pair: tuple[Connection, socket.socket]) -> None:
    conn, peer = pair
    assert not conn.request_waiting(1024)  # nothing yet
    data = _frame(("ping", 1))
    peer.sendall(data[:-3])
    assert not conn.request_waiting(1024)  # a part: reading it could wait on the peer
    peer.sendall(data[-3:])
    assert conn.request_waiting(1024)
    assert not conn.request_waiting(len(data) - 10)  # over the limit: a request thread's
    assert conn.recv() == ("ping", 1)  # the peek read nothing
    conn.close()  # the peeking socket let go of the descriptor without closing it twice
    assert conn.closed


class _Calls:
    """A minimal ``serve`` for a Loop: each request names a call; quick ones say so."""

    def __init__(self, loop_ref: list[serving.Loop]) -> None:
        self.loop_ref = loop_ref
        self.threads: dict[str, str] = {}
        self.done = threading.Event()

    def serve(self, conn: Any) -> serving.Pending:
        name = conn.recv()

        def run() -> str:
            self.threads[name] = threading.current_thread().name
            if len(self.threads) == 2:
                self.done.set()
            return name

        return serving.Pending(loop=self.loop_ref[0], conn=conn, run=run, parkable=False,
                               quick=name == "quick")


def test_quick_calls_run_on_the_loop_thread_and_others_on_request_threads() -> None:
    ref: list[serving.Loop] = []
    calls = _Calls(ref)
    loop = serving.Loop(calls.serve, lambda c: c.close(), lambda c: c.request_waiting(1024))
    ref.append(loop)
    pairs = [socket.socketpair() for _ in range(2)]
    conns = [Connection(a.detach()) for a, _ in pairs]
    loop.start()
    try:
        for conn in conns:
            loop.add(conn)
        for (_, peer), name in zip(pairs, ["quick", "slow"], strict=True):
            peer.settimeout(10)
            peer.sendall(_frame(name))
        assert calls.done.wait(10), "the calls were not served"
        for _, peer in pairs:  # each got its reply
            assert peer.recv(4096)
    finally:
        loop.stop()
        for _, peer in pairs:
            peer.close()
    assert calls.threads["quick"] == "taskq-loop"
    assert calls.threads["slow"].startswith("taskq-request-")


def test_a_parked_call_whose_peer_hangs_up_is_dropped_not_run_again() -> None:
    """A killed worker's parked take must not be woken later and handed a lease."""
    lock = threading.Lock()
    signal = serving.Signal(lock)
    runs: list[str] = []
    closed = threading.Event()
    ref: list[serving.Loop] = []

    def serve(conn: Any) -> serving.Pending:
        conn.recv()

        def run() -> str:
            with lock:
                runs.append("run")
                serving.park(signal, 30)
            return "woken"

        return serving.Pending(loop=ref[0], conn=conn, run=run, parkable=True, quick=True)

    def close(conn: Any) -> None:
        conn.close()
        closed.set()

    loop = serving.Loop(serve, close, lambda c: c.request_waiting(1024))
    ref.append(loop)
    ours, peer = socket.socketpair()
    loop.start()
    try:
        loop.add(Connection(ours.detach()))
        peer.sendall(_frame("take"))

        def parked() -> bool:
            with lock:
                return len(signal.parked) == 1

        wait_for(parked, 10, "the call to park")
        peer.close()  # the worker is killed while its call waits
        assert closed.wait(10), "the connection of a peer that left was kept"
        with lock:
            assert signal.parked == {}
            signal.notify_all()  # work comes: nothing is run for the peer that left
        assert runs == ["run"]
    finally:
        loop.stop()


def test_a_call_woken_and_parked_again_keeps_its_deadline_and_answers_once() -> None:
    """A take woken by work it cannot lease parks again until the same deadline: the loop's
    timers hold it twice, and the call still answers once, at that deadline."""
    lock = threading.Lock()
    signal = serving.Signal(lock)
    runs: list[float] = []
    ref: list[serving.Loop] = []

    def serve(conn: Any) -> serving.Pending:
        conn.recv()

        def run() -> str:
            with lock:
                runs.append(time.monotonic())
                serving.park(signal, 0.3)
            return "done"

        return serving.Pending(loop=ref[0], conn=conn, run=run, parkable=True, quick=True)

    loop = serving.Loop(serve, lambda c: c.close(), lambda c: c.request_waiting(1024))
    ref.append(loop)
    ours, peer = socket.socketpair()
    peer.settimeout(10)
    loop.start()
    try:
        loop.add(Connection(ours.detach()))
        peer.sendall(_frame("take"))

        def parked() -> bool:
            with lock:
                return len(signal.parked) == 1

        for _ in range(3):  # woken with nothing for it: parked again, same deadline
            wait_for(parked, 10, "the call to park")
            with lock:
                signal.notify_all()
        assert peer.recv(4096)  # answered at its deadline, the loop alive
        first = runs[0]
        assert runs[-1] - first >= 0.3 and len(runs) >= 4
        with lock:
            assert signal.parked == {}
    finally:
        loop.stop()
        peer.close()




def _replied(sock: socket.socket) -> bool:
    """Has a reply reached this peer (read nothing)?"""
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


class _Wakes:
    """Calls that park until a "wake" call notifies them all; each run again records
    whether the waker's peer already had its reply."""

    def __init__(self, ref: list[serving.Loop], waker: socket.socket) -> None:
        self.lock = threading.Lock()
        self.signal = serving.Signal(self.lock)
        self.ref, self.waker = ref, waker
        self.woken = False
        self.ran: list[str] = []
        self.late = 0  # woken calls run after the waker's reply went out

    def serve(self, conn: Any) -> serving.Pending:
        name = conn.recv()

        def run() -> str:
            with self.lock:
                if name == "wake":
                    self.woken = True
                    self.signal.notify_all()
                elif not self.woken:
                    serving.park(self.signal, 30)
                else:
                    self.late += _replied(self.waker)
                self.ran.append(name)
            return name

        return serving.Pending(loop=self.ref[0], conn=conn, run=run, parkable=True,
                               quick=True)


def test_a_call_that_wakes_hundreds_answers_them_all_before_its_own_reply() -> None:
    """One quick call on the loop thread wakes 600 parked ones (a submit waking every
    idle worker's poll): each runs once, in one flat pass (no call stack grows with their
    number), and each peer gets its answer; the waker's own reply goes out after them."""
    pairs = [socket.socketpair() for _ in range(601)]
    peers = [theirs for _, theirs in pairs]
    ref: list[serving.Loop] = []
    calls = _Wakes(ref, peers[-1])
    loop = serving.Loop(calls.serve, lambda c: c.close(), lambda c: c.request_waiting(1024))
    ref.append(loop)
    loop.start()
    try:
        for ours, peer in pairs:
            peer.settimeout(10)
            loop.add(Connection(ours.detach()))
        for i, peer in enumerate(peers[:-1]):
            peer.sendall(_frame(f"take-{i}"))

        def parked() -> bool:
            with calls.lock:
                return len(calls.signal.parked) == 600

        wait_for(parked, 20, "600 calls to park")
        peers[-1].sendall(_frame("wake"))
        for peer in peers:  # every peer answered (none dropped by a failure in the loop)
            assert peer.recv(4096)
        assert sorted(calls.ran) == sorted([*(f"take-{i}" for i in range(600)), "wake"])
        assert calls.late == 0  # the waker's reply went out after every call it woke ran
    finally:
        loop.stop()
        for peer in peers:
            peer.close()

def test_a_long_poll_gets_its_wait_on_top_of_the_call_timeout(
        pair: tuple[Connection, socket.socket]) -> None:
    """A take parked for 30 s must not be taken for a dead link after CALL_TIMEOUT_S."""
    import struct

    from taskq import defaults
    from taskq.net import managers

    conn, _ = pair
    assert set(managers._WAIT_AT) >= {"take", "fetch", "flush"}
    conn.reads_within(defaults.CALL_TIMEOUT_S + defaults.PARKED_POLL_MAX_S)
    sock = socket.socket(fileno=conn.fileno())
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    finally:
        sock.detach()
    seconds, _ = struct.unpack("ll", raw)
    assert seconds == int(defaults.CALL_TIMEOUT_S + defaults.PARKED_POLL_MAX_S)
