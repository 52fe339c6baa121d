"""TLS on taskq's connections: ``TLSConnection``, and each side's handshake around it.

    peer:   client() ── TCP ── tls_to_master (verify the master as its host name)
                     ── read_first_message (a TLS master's word to a plain peer, or its refusal
                        of this peer's certificate, arrives here) ── authkey challenge ...
    master: Server._handle_request ── tls_from_peer (in the connection's own thread) ── ...

The settings and the socket-level parts are ``taskq.net.tls``; this module joins them to
``taskq.net.managers``'s connections (the same object becomes a ``TLSConnection``, so whoever
holds it, and closes it, keeps doing so). A peer learns the settings of each master it
talks to from ``use_tls``: the manager calls ``client`` with the address and key only.
"""

from __future__ import annotations

import ssl
from multiprocessing import connection
from typing import Any, cast

from taskq import defaults
from taskq.net import connection as framed
from taskq.net import tls
from taskq.net.connection import Connection, _Received
from taskq.protocol import frames


class TLSConnection(Connection):
    """A ``Connection`` whose frames go through a TLS socket (which owns the descriptor);
    see ``taskq.net.tls``. ``read_timeout`` bounds the wait for a message's first byte."""

    tls_socket: ssl.SSLSocket
    read_timeout: float | None = defaults.CALL_TIMEOUT_S

    def send(self, obj: Any) -> None:
        self._check_closed()  # type: ignore[attr-defined]
        parts = frames.pack(obj)
        head = frames.frame(frames.packed_size(parts))
        small = b"".join([head, *(p for p in parts if len(p) < frames.OUT_OF_BAND_MIN)])
        if len(small) == len(head) + frames.packed_size(parts):
            self.tls_socket.sendall(small)
            return
        self.tls_socket.sendall(head)
        for part in parts:
            self.tls_socket.sendall(part)

    def _send(self, buf: Any, write: Any = None) -> None:
        self.tls_socket.sendall(buf)

    def reads_within(self, seconds: float) -> None:
        self.read_timeout = seconds  # applied to the TLS socket at each read

    def request_waiting(self, limit: int) -> bool:
        return False  # what the socket holds is TLS records: read on a request thread

    def _read_frame(self) -> bytearray:
        limit = self.max_frame or framed._reply_limit
        try:
            return tls.read_frame(self.tls_socket, limit, self.frame_timeout,
                                  None if self.idle else self.read_timeout)
        except frames.FrameError as exc:
            self._drop(exc)

    def _recv(self, size: int, read: Any = None) -> _Received:
        limit = self.max_frame or framed._reply_limit
        if not 0 <= size <= limit:
            raise frames.FrameTooLarge(f"a frame claims {size} bytes; at most {limit} are "
                                     f"accepted", size)
        buf = bytearray(size)
        self.tls_socket.settimeout(self.read_timeout)
        tls.read_exact(self.tls_socket, memoryview(buf))
        return _Received(buf)

    def _close(self, _close: Any = None) -> None:
        self.tls_socket.close()


def _secure(conn: Connection, sock: ssl.SSLSocket, read_timeout: float | None) -> None:
    """Turn a connection into a TLSConnection over ``sock`` (same object, so whoever holds
    it, and closes it, keeps doing so)."""
    conn.__class__ = TLSConnection
    secured = cast(TLSConnection, conn)
    secured._handle = sock.fileno()  # type: ignore[attr-defined]
    secured.tls_socket = sock
    secured.read_timeout = read_timeout


# The TLS settings of each master this process talks to (the manager's connect calls
# ``client`` with the address and key only).
_client_tls: dict[tuple[str, int], ssl.SSLContext] = {}


def use_tls(address: tuple[str, int], settings: tls.TLS | None) -> None:
    """Connections from this process to the master at ``address`` use these TLS settings."""
    if settings is None:
        _client_tls.pop(address, None)
    else:
        _client_tls[address] = settings.client_context()


def tls_to_master(conn: Connection, address: tuple[str, int], timeout: float) -> None:
    context = _client_tls.get(address)
    if context is None:
        return
    where = f"{address[0]}:{address[1]}"
    try:
        sock = tls.client_handshake(_give_up_fd(conn), context, address[0], timeout)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        raise ConnectionResetError(f"the master at {where} closed the TLS handshake") from None
    except ssl.SSLError as exc:
        raise tls.TLSError(f"TLS handshake with the master at {where} failed: "
                           f"{tls.reason(exc)}; {tls.HINT}") from None
    _secure(conn, sock, timeout)


def _give_up_fd(conn: Connection) -> int:
    """The connection's descriptor, now owned by the TLS socket made of it (which closes it
    if its handshake fails); ``_secure`` gives the connection the socket."""
    fd = conn.fileno()
    conn._handle = None  # type: ignore[attr-defined]
    return fd


def read_first_message(conn: Connection, address: tuple[str, int]) -> None:
    """Read the master's first message ahead: a TLS master tells a plain peer so (and with
    TLS 1.3 a master refuses this peer's certificate only now)."""
    try:
        first = conn.recv_bytes(256)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        raise ConnectionResetError("the master closed the connection") from None
    except ssl.SSLError as exc:
        raise tls.TLSError(f"the master at {address[0]}:{address[1]} refused this peer's "
                           f"TLS: {tls.reason(exc)}; {tls.HINT}") from None
    if first.startswith(tls.REQUIRED):
        said = first[len(tls.REQUIRED):].decode("utf-8", "replace").strip()
        raise tls.TLSError(f"the master at {address[0]}:{address[1]} refused this peer: "
                           f"{said}")
    conn._unread = first


def dropped_reason(c: connection.Connection, exc: Exception) -> str:
    reason = f"{type(exc).__name__}: {str(exc)[:200]}"
    if "bad message length" in reason and not isinstance(c, TLSConnection):
        reason += " (a TLS peer? this master runs without --tls-cert)"
    return reason


def tls_from_peer(c: Connection, context: ssl.SSLContext) -> None:
    """The master's side of TLS on a new connection, in its own thread; TLSError says why
    it failed (a plain-text peer is told in a frame it can read)."""
    if not tls.spoke_first(c.fileno(), defaults.PLAIN_PEER_WAIT_S):
        tls.tell_plain_peer(c.fileno())
        raise tls.TLSError("the peer spoke no TLS: a plain-text peer (start it with "
                           "--tls-ca, or TASKQ_TLS_CA)")
    try:
        sock = tls.server_handshake(_give_up_fd(c), context)
    except (OSError, ValueError) as exc:
        raise tls.TLSError(f"TLS handshake failed: {tls.reason(exc)}") from None
    _secure(c, sock, defaults.HANDSHAKE_TIMEOUT_S)
