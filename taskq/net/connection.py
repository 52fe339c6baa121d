"""One framed connection between a peer and the master, under the managers' request/reply.

``Connection`` is ``multiprocessing.connection.Connection`` with taskq's framing
(``protocol.frames``: a length-prefixed frame, large buffers out of band), bounded frames
(a frame over the limit is dropped with the connection, never read into memory) and the
restricted loader on the master's side (``protocol.restricted``)::

    send(obj) ── frames.pack ──► socket ──► _read_frame (≤ limit) ── frames.split ──► recv()
                                                                      master: restricted.loads
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import ssl
import struct
from multiprocessing import connection
from typing import Any, NoReturn

from taskq import defaults, logs
from taskq.protocol import frames, restricted
from taskq.protocol.replies import MasterInfo

log = logs.get_logger(__name__)


def parse_address(text: str, default_port: int = defaults.PORT) -> tuple[str, int]:
    """'host:port', 'host' or ':port' -> (host, port); ValueError with a clear message."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = port_text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad address {text!r}: expected HOST:PORT, e.g. 10.0.0.5:5000") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bad address {text!r}: port must be 0-65535")
    return host, port


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def tune(fd: int, read_timeout: float | None, server: bool) -> None:
    """Set socket options on a connection's descriptor (shared by every dup of it)."""
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(read_timeout or 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(read_timeout or 0))
        if server:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, defaults.KEEPALIVE_IDLE_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL,
                            defaults.KEEPALIVE_INTERVAL_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, defaults.KEEPALIVE_COUNT)
    finally:
        sock.detach()


def tune_reads(fd: int, seconds: float) -> None:
    """Set only a connection's read timeout (SO_RCVTIMEO)."""
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
    finally:
        sock.detach()


def shut_down(fd: int) -> None:
    """Shut a connection down both ways (a thread blocked reading it gets end of file);
    the descriptor stays open for its owner to close."""
    sock = socket.socket(fileno=fd)
    try:
        with contextlib.suppress(OSError):  # not connected any more: nothing blocks on it
            sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.detach()


def peer_of(conn: connection.Connection) -> str:
    sock = socket.socket(fileno=conn.fileno())
    try:
        name = sock.getpeername()
    except OSError:
        return "?"
    else:
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name or "?")
    finally:
        sock.detach()


def frame_limit(max_payload: int) -> int:
    """The largest frame read on a connection to or from a master with this --max-payload."""
    return max_payload + defaults.FRAME_OVER_PAYLOAD_BYTES


# The largest frame this process reads from a master: sized for the default --max-payload
# until a master says more in its MasterInfo (see _learn).
_reply_limit = frame_limit(int(defaults.MAX_PAYLOAD_MB * 1024 * 1024))


def allow_max_payload(max_payload: int) -> None:
    """Let this process's connections read replies from a master with this --max-payload
    (the limit only grows: a process may talk to several masters)."""
    global _reply_limit
    _reply_limit = max(_reply_limit, frame_limit(max_payload))


def _learn(reply: Any) -> None:
    """A master's reply that carries its MasterInfo sizes this process's frames."""
    if type(reply) is tuple and len(reply) == 2 and type(reply[1]) is MasterInfo:
        allow_max_payload(reply[1].max_payload)


class FrameDropped(EOFError):
    """A frame over its size or time bound: the connection was closed (an EOFError, so a
    server thread ends and a link reconnects as for any lost connection)."""


class _Received:
    """A received message, as ``multiprocessing.connection`` expects from ``_recv``."""

    __slots__ = ("_buf",)

    def __init__(self, buf: bytearray) -> None:
        self._buf = buf

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def getbuffer(self) -> memoryview:
        return memoryview(self._buf)


class Connection(connection.Connection):
    """The standard socket connection, but messages are read straight into one buffer of
    their final size (the standard one grows a BytesIO chunk by chunk: slow for big bodies)
    and objects are packed by ``taskq.protocol.frames``: large buffers in them (task arguments and
    results, see ``taskq.protocol.messages``) cross uncopied, out of band.

    Every frame is bounded before it is read: in size by ``max_frame`` (None: this process's
    limit for replies from a master, see ``allow_max_payload``) and, once started, in time
    by ``frame_timeout`` (see ``frames.read_message``). With ``idle`` (the master's side
    between requests) the wait for the next message's first byte is not bounded."""

    max_frame: int | None = None
    frame_timeout: float = defaults.FRAME_TIMEOUT_S
    idle = False
    restricted = False  # the master's side: requests are loaded by taskq.protocol.restricted
    tls_context: ssl.SSLContext | None = None  # the master's side: TLS still to set up
    # the master's side: who calls on it, and this connection's number (``serving.name_peer``)
    peer: tuple[str, int] | None = None
    _unread: bytes | None = None  # a handshake message read ahead (see client)
    _peeker: socket.socket | None = None  # the descriptor as a socket, for peeks only

    _reads_within: float | None = None  # the read timeout set last (SO_RCVTIMEO)

    def reads_within(self, seconds: float) -> None:
        """Bound how long a read waits for the master's reply (set only when it changes)."""
        if self._reads_within != seconds:
            tune_reads(self._handle, seconds)  # type: ignore[attr-defined]
            self._reads_within = seconds

    def request_waiting(self, limit: int) -> bool:
        """Is a whole frame of at most ``limit`` bytes already here, so that reading it
        cannot wait on the peer? A peek: nothing is read."""
        if self._unread is not None or socket.getdefaulttimeout() is not None:
            return False
        peeker = self._peeker
        if peeker is None:  # shares the descriptor: detached, never closed (see _close)
            peeker = self._peeker = socket.socket(fileno=self._handle)  # type: ignore[attr-defined]
        try:
            data = peeker.recv(limit + 4, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False
        return frames.holds_frame(data)

    def _close(self, _close: Any = os.close) -> None:
        if self._peeker is not None:
            self._peeker.detach()
            self._peeker = None
        _close(self._handle)  # type: ignore[attr-defined]

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        if self._unread is not None:
            data, self._unread = self._unread, None
            return data
        return super().recv_bytes(maxlength)

    def send(self, obj: Any) -> None:
        """Pickle and send ``obj``; its large buffers are written from where they lie."""
        self.send_packed(frames.pack(obj))

    def send_packed(self, parts: list[frames.Part]) -> None:
        """Send what ``frames.pack`` made of an object (a caller that sizes it first)."""
        self._check_closed()  # type: ignore[attr-defined]
        self._check_writable()  # type: ignore[attr-defined]
        frames.write_message(self._handle, parts)  # type: ignore[attr-defined]

    def recv(self) -> Any:
        """Receive what ``send`` sent; its large buffers are views into the one read."""
        self._check_closed()  # type: ignore[attr-defined]
        self._check_readable()  # type: ignore[attr-defined]
        message = self._read_frame()
        blob, buffers, _ = frames.split(memoryview(message))
        if self.restricted:
            return self._load_request(blob, buffers)
        obj = pickle.loads(blob, buffers=buffers)  # noqa: S301 -- a reply of the master this peer authenticated (and verified)
        if self.max_frame is None:
            _learn(obj)
        return obj

    def _load_request(self, blob: memoryview, buffers: list[memoryview]) -> Any:
        """A peer's request, loaded by the restricted unpickler: one naming anything else
        is refused, logged, and its connection closed."""
        try:
            return restricted.loads(blob, buffers)
        except restricted.Forbidden as exc:
            log.warning("request_refused", peer=peer_of(self), reason=str(exc))
            self.close()
            raise FrameDropped(str(exc)) from None

    def _read_frame(self) -> bytearray:
        limit = self.max_frame or _reply_limit
        while True:
            try:
                return frames.read_message(self._handle, limit,  # type: ignore[attr-defined]
                                         self.frame_timeout)
            except BlockingIOError:  # the socket's timeout passed before any byte came
                if not self.idle:
                    raise
            except frames.FrameError as exc:
                self._drop(exc)

    def _drop(self, exc: frames.FrameError) -> NoReturn:
        """Close the connection (its stream is out of step) and say why."""
        if isinstance(exc, frames.FrameTooLarge | frames.FrameStalled):
            event = "frame_rejected" if isinstance(exc, frames.FrameTooLarge) else "frame_stalled"
            log.warning(event, peer=peer_of(self), claimed=exc.size,
                        limit=self.max_frame or _reply_limit)
        self.close()
        raise FrameDropped(str(exc)) from None

    def _recv(self, size: int, read: Any = None) -> _Received:
        """A read of the standard handshake (its messages are checked against 256 bytes
        before this is called); never more than a frame may hold."""
        limit = self.max_frame or _reply_limit
        if not 0 <= size <= limit:
            raise frames.FrameTooLarge(f"a frame claims {size} bytes; at most {limit} are "
                                     f"accepted", size)
        buf = bytearray(size)
        frames.read_into(self._handle, memoryview(buf))  # type: ignore[attr-defined]
        return _Received(buf)


def adopt(conn: connection.Connection) -> Connection:
    """Move a standard connection's descriptor into a ``Connection``."""
    handle = conn._handle  # type: ignore[attr-defined]
    conn._handle = None  # type: ignore[attr-defined]
    return Connection(handle)
