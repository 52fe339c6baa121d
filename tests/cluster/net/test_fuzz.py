"""Fuzzing the master's port, for a bounded number of examples: random bytes before the
handshake, and random or mutated frames after it (valid requests with bytes flipped, cut
short or lengthened, random calls with random arguments, lying length prefixes). The master
never crashes, stays within a memory bound, and serves a real client all along."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from multiprocessing import connection

import pytest
import tasks_mod
from cluster import Cluster, Proc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq.net import connection as framed
from taskq.net import managers
from taskq.net.connection import parse_address
from taskq.protocol import api, frames, versions
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, WorkerHello

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

EXAMPLES = 200
MEMORY_BOUND_KIB = 150 * 1024  # growth of the master's peak resident size over the run


def _vm(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(field)


@pytest.fixture
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Proc]]:
    cluster = Cluster(tmp_path_factory.mktemp("fuzz"))
    try:
        master = cluster.start_master()
        cluster.start_worker()
        yield cluster, master
    finally:
        cluster.close()


def _connect(cluster: Cluster, authenticate: bool) -> tuple[socket.socket, connection.Connection]:
    sock = socket.create_connection(parse_address(cluster.address), timeout=5)
    sock.settimeout(None)
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", 2, 0))
    conn = framed.Connection(os.dup(sock.fileno()))  # taskq's framing of objects
    if authenticate:
        connection.answer_challenge(conn, cluster.authkey.encode())
        connection.deliver_challenge(conn, cluster.authkey.encode())
        conn.send_bytes(versions.encode(versions.HELLO, versions.local()))
        conn.recv_bytes()
    return sock, conn


def _broker_ident(cluster: Cluster) -> str:
    """The id under which the master serves its broker (fixed: every peer knows it)."""
    return managers.BROKER_ID


def _serving(cluster: Cluster) -> tuple[socket.socket, connection.Connection]:
    """A connection past its first request: the master now serves calls on it."""
    sock, conn = _connect(cluster, authenticate=True)
    conn.send((None, "accept_connection", ("fuzz",), {}))
    assert conn.recv() == ("#RETURN", None)
    return sock, conn


def _exchange(sock: socket.socket, conn: connection.Connection, data: bytes) -> None:
    """Send ``data`` raw, read whatever comes back for a moment, then hang up."""
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:
        pass  # the master may close first, or say nothing in the time given
    finally:
        conn.close()
        sock.close()


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)
messages = st.builds(TaskMsg, st.text(max_size=30), st.text(max_size=30), st.binary(max_size=30),
                     st.binary(max_size=30)) | st.builds(
    ResultMsg, st.text(max_size=30), st.sampled_from(list(Status)), st.binary(max_size=20)) \
    | st.builds(WorkerHello, st.text(max_size=20), st.text(max_size=10), st.integers(),
                st.integers(), st.tuples(st.text(max_size=5)))
class Foreign:
    """An object the master must not load (harmless if it did: it names os.getpid)."""

    def __reduce__(self) -> tuple[object, ...]:
        return (os.getpid, ())


IDENT: list[str] = []  # the broker's id on the master under test
requests = st.tuples(st.none() | st.text(max_size=10) | st.builds(lambda: IDENT[0]),
                     st.sampled_from([*api.EXPOSED, "create", "accept_connection", "dummy",
                                      "incref", "decref", "shutdown", "#GETVALUE", "__repr__"]),
                     st.lists(plain | messages | st.builds(Foreign), max_size=4).map(tuple),
                     st.dictionaries(st.text(max_size=5), plain, max_size=2))


@st.composite
def frame_bytes(draw: st.DrawFn) -> bytes:
    body = b"".join(bytes(p) for p in frames.pack(draw(requests)))
    how = draw(st.sampled_from(["as is", "flipped", "cut", "lying length", "random"]))
    if how == "flipped" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    elif how == "cut":
        body = body[:draw(st.integers(0, len(body)))]
    elif how == "random":
        body = draw(st.binary(max_size=200))
    size = len(body) if how != "lying length" else draw(st.integers(-2, 2**31 - 1))
    return frames.frame(size) + body


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(when=st.sampled_from(["before", "first", "served"]), data=st.binary(max_size=300),
       frame=frame_bytes())
def _fuzz(cluster: Cluster, master: Proc, when: str, data: bytes, frame: bytes) -> None:
    """One example: random bytes before the handshake, or a frame after it (as the first
    request of a connection, or on one the master serves calls on)."""
    if when == "served":
        sock, conn = _serving(cluster)
    else:
        sock, conn = _connect(cluster, authenticate=when == "first")
    _exchange(sock, conn, data if when == "before" else frame)
    assert master.popen.poll() is None


def test_fuzzed_frames_never_take_the_master_down_and_a_real_client_is_served(
        fuzzed: tuple[Cluster, Proc]) -> None:
    cluster, master = fuzzed
    peak_before = _vm(master.pid, "VmHWM")
    done: list[int] = []
    stop = threading.Event()

    def steady_client() -> None:
        with cluster.client() as client:
            while not stop.is_set():
                done.append(client.submit(tasks_mod.add, len(done), 1).result(timeout=30))

    IDENT[:] = [_broker_ident(cluster)]
    thread = threading.Thread(target=steady_client, daemon=True)
    thread.start()
    try:
        _fuzz(cluster, master)  # every example, while the client runs
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and len(done) > 0
    assert done == [i + 1 for i in range(len(done))]
    assert master.popen.poll() is None
    assert _vm(master.pid, "VmHWM") - peak_before < MEMORY_BOUND_KIB
    log = master.stderr()  # the examples did reach the master, before and after the handshake
    assert "authkey did not match" in log or "connection_dropped" in log
    assert "peer_authenticated" in log and "request_refused" in log
