"""Frames are bounded before they are read: in size (nothing is allocated for a claim over
the limit, and its connection is closed) and, once started, in time.

Against a real master: a peer that passes the authkey handshake and then claims a 2 GiB
frame, one that sends garbage instead of the handshake, and one that stops in the middle of
a frame; the master stays small and keeps serving a real client. Then ``fdio`` and
``framed.Connection`` on socket pairs, for the cases a master cannot easily be made to do.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from multiprocessing import connection

import pytest
import tasks_mod
from cluster import Cluster, Proc, wait_for, wait_ready

from taskq import defaults
from taskq.net import connection as framed
from taskq.net.connection import parse_address
from taskq.protocol import frames, versions
from taskq.protocol.replies import MasterInfo

pytestmark = pytest.mark.timeout(120)

TWO_GIB = 2 * 1024**3
MIB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    """A size from /proc/PID/status (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _open(cluster: Cluster) -> socket.socket:
    sock = socket.create_connection(parse_address(cluster.address), timeout=10)
    sock.settimeout(None)  # blocking, as the connections sharing its descriptor expect,
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):  # but never for long
        sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", 10, 0))
    return sock


def _authenticated(cluster: Cluster) -> tuple[socket.socket, connection.Connection]:
    """A raw connection that has passed the master's authkey and version handshakes."""
    sock = _open(cluster)
    conn = connection.Connection(os.dup(sock.fileno()))
    connection.answer_challenge(conn, cluster.authkey.encode())
    connection.deliver_challenge(conn, cluster.authkey.encode())
    conn.send_bytes(versions.encode(versions.HELLO, versions.local()))
    assert conn.recv_bytes().startswith(versions.OK)
    return sock, conn


def _closed_by_peer(sock: socket.socket) -> bool:
    """Read until the master closes the connection (a bounded wait: socket timeout)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def _start_master(cluster: Cluster, **env: str) -> Proc:
    args = ["master", "--host", "127.0.0.1", "--port", "0", "--in-memory", "--log-json"]
    proc = cluster.spawn(args, env={**cluster.env, **env}, stdout=-1)
    cluster.address = wait_ready(proc)
    return proc


@pytest.fixture
def master(cluster: Cluster) -> Iterator[Proc]:
    proc = _start_master(cluster)
    cluster.start_worker()
    cluster.wait_workers(1)
    yield proc


def _still_serves(cluster: Cluster, client: object) -> None:
    future = client.submit(tasks_mod.add, 2, 3)  # type: ignore[attr-defined]
    assert future.result(timeout=20) == 5


# ------------------------------------------------------------------ against a real master


def test_a_2_gib_claim_after_the_handshake_allocates_nothing_and_is_dropped(
        cluster: Cluster, master: Proc) -> None:
    with cluster.client() as client:
        _still_serves(cluster, client)
        before = _status_kib(master.pid, "VmRSS")
        sock, conn = _authenticated(cluster)
        sock.sendall(struct.pack("!i", -1) + struct.pack("!Q", TWO_GIB))
        assert _closed_by_peer(sock)
        # never anywhere near the claimed size, not even for a moment
        assert _status_kib(master.pid, "VmHWM") < before + 256 * 1024
        assert _status_kib(master.pid, "VmRSS") < before + 64 * 1024
        wait_for(lambda: "frame_rejected" in master.stderr(), 10, "the frame_rejected line")
        line = next(ln for ln in master.stderr().splitlines() if "frame_rejected" in ln)
        assert str(TWO_GIB) in line and "127.0.0.1:" in line
        assert cluster.authkey not in master.stderr()
        _still_serves(cluster, client)  # the client that was connected all along
        conn.close()
        sock.close()
    with cluster.client() as fresh:
        _still_serves(cluster, fresh)


def test_a_claim_just_over_the_limit_is_refused_and_one_under_it_is_read(
        cluster: Cluster) -> None:
    master = _start_master(cluster)
    limit = framed.frame_limit(int(defaults.MAX_PAYLOAD_MB * MIB))
    sock, conn = _authenticated(cluster)
    sock.sendall(struct.pack("!i", limit + 1))
    assert _closed_by_peer(sock)
    wait_for(lambda: f"{limit + 1}" in master.stderr(), 10, "the rejected claim in the log")
    conn.close()
    sock.close()


def test_garbage_before_the_handshake_is_dropped_at_once(cluster: Cluster,
                                                        master: Proc) -> None:
    with cluster.client() as client:
        for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff" * 64,
                        struct.pack("!i", -1) + struct.pack("!Q", TWO_GIB), os.urandom(512)):
            sock = _open(cluster)
            started = time.monotonic()
            sock.sendall(garbage)
            assert _closed_by_peer(sock)
            assert time.monotonic() - started < defaults.HANDSHAKE_TIMEOUT_S + 5
            sock.close()
        assert _status_kib(master.pid, "VmHWM") < 512 * 1024
        _still_serves(cluster, client)


def test_a_peer_that_stops_mid_frame_frees_its_server_thread(cluster: Cluster) -> None:
    master = _start_master(cluster, **{defaults.ENV_FRAME_TIMEOUT: "0.5"})
    cluster.start_worker()
    sock = _open(cluster)
    conn = framed.Connection(os.dup(sock.fileno()))
    connection.answer_challenge(conn, cluster.authkey.encode())
    connection.deliver_challenge(conn, cluster.authkey.encode())
    conn.send_bytes(versions.encode(versions.HELLO, versions.local()))
    assert conn.recv_bytes().startswith(versions.OK)
    conn.send((None, "accept_connection", ("test",), {}))  # a long-lived connection, served
    assert conn.recv() == ("#RETURN", None)
    sock.sendall(struct.pack("!i", 1000) + b"x" * 10)  # a tenth of a frame, then silence
    assert _closed_by_peer(sock)
    wait_for(lambda: "frame_stalled" in master.stderr(), 10, "the frame_stalled line")
    conn.close()
    sock.close()
    with cluster.client() as client:  # waits between requests are not cut short
        _still_serves(cluster, client)
        time.sleep(1.2)  # the phenomenon under test: idle connections, past the timeout
        _still_serves(cluster, client)
    assert master.stderr().count("frame_stalled") == 1
    assert "master_link_lost" not in "".join(p.stderr() for p in cluster.procs[1:])


# ------------------------------------------------------------------ fdio on socket pairs


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200_000))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_whole_message_is_read_and_the_limit_is_inclusive(pair: tuple[socket.socket,
                                                                         socket.socket]) -> None:
    a, b = pair
    frames.write_message(a.fileno(), [b"abc", b"defg"])
    assert frames.read_message(b.fileno(), limit=7, timeout=1.0) == b"abcdefg"
    frames.write_message(a.fileno(), [])
    assert frames.read_message(b.fileno(), limit=0, timeout=1.0) == b""


@pytest.mark.parametrize(("head", "claimed"), [
    (struct.pack("!i", 1001), 1001), (struct.pack("!i", -7), -7),
    (struct.pack("!i", -1) + struct.pack("!Q", 2**40), 2**40)])
def test_an_oversized_or_negative_claim_raises_before_any_allocation(
        pair: tuple[socket.socket, socket.socket], head: bytes, claimed: int) -> None:
    a, b = pair
    a.sendall(head)
    with pytest.raises(frames.FrameTooLarge) as info:
        frames.read_message(b.fileno(), limit=1000, timeout=1.0)
    assert info.value.size == claimed


def test_silence_before_a_frame_is_not_a_stall(pair: tuple[socket.socket,
                                                           socket.socket]) -> None:
    a, b = pair
    with pytest.raises(BlockingIOError):
        frames.read_message(b.fileno(), limit=100, timeout=0.1)
    frames.write_message(a.fileno(), [b"still in step"])
    assert frames.read_message(b.fileno(), limit=100, timeout=0.1) == b"still in step"


@pytest.mark.parametrize("sent", [b"\x00\x00", struct.pack("!i", 100) + b"y" * 40])
def test_silence_inside_a_frame_is_a_stall(pair: tuple[socket.socket, socket.socket],
                                           sent: bytes) -> None:
    a, b = pair
    a.sendall(sent)
    with pytest.raises(frames.FrameStalled):
        frames.read_message(b.fileno(), limit=1000, timeout=5.0)


def test_a_trickled_frame_is_cut_off_at_its_deadline(pair: tuple[socket.socket,
                                                                  socket.socket]) -> None:
    a, b = pair
    stop = threading.Event()

    def trickle() -> None:
        a.sendall(struct.pack("!i", 1000))
        while not stop.wait(0.05):
            a.sendall(b"z")  # each read gets a byte well within the socket's timeout

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(frames.FrameStalled):
            frames.read_message(b.fileno(), limit=1000, timeout=0.3)
    finally:
        stop.set()
        thread.join(5)
    assert time.monotonic() - started < 0.3 + 1000 / defaults.FRAME_MIN_BYTES_PER_S + 1.0


# ------------------------------------------------------------ framed.Connection (client)


def test_a_reply_over_the_limit_closes_the_connection(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    monkeypatch.setattr(framed, "_reply_limit", 4096)
    conn = framed.Connection(os.dup(b.fileno()))
    a.sendall(struct.pack("!i", 4097))
    with pytest.raises(framed.FrameDropped):
        conn.recv()
    assert conn.closed


def test_masterinfo_in_a_reply_raises_this_process_s_limit(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    monkeypatch.setattr(framed, "_reply_limit", framed.frame_limit(MIB))
    conn = framed.Connection(os.dup(b.fileno()))
    sender = framed.Connection(os.dup(a.fileno()))
    sender.send(("#RETURN", MasterInfo(512 * MIB, 5.0, 1.0, False)))
    conn.recv()
    assert framed._reply_limit == framed.frame_limit(512 * MIB)
    sender.send(("#RETURN", MasterInfo(MIB, 5.0, 1.0, False)))
    conn.recv()  # a smaller master does not shrink what another one may send
    assert framed._reply_limit == framed.frame_limit(512 * MIB)
    conn.close()
    sender.close()
