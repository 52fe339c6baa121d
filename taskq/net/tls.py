"""TLS for every connection to a master, from the standard library's ``ssl``.

    peer ── TCP ── TLS handshake (verify the master by host name against --tls-ca;
                   with mutual TLS, the master verifies the peer's --tls-cert) ──
         ── authkey challenge ── version hello ── manager protocol, all inside TLS

``TLS`` is the configuration (``--tls-ca/--tls-cert/--tls-key``, ``TASKQ_TLS_*``, or
``taskq.TLS(...)``); ``TLSConnection`` is ``transport.Connection`` over an ``SSLSocket``
(frames are read and written through the TLS layer, never on the raw descriptor; the plain
path keeps its vectored I/O). The master runs the TLS handshake in the connection's own
thread, bounded by HANDSHAKE_TIMEOUT_S, never in the accept loop.

A plain-text peer waits for the master's challenge and never speaks first: a TLS master
that hears nothing within defaults.PLAIN_PEER_WAIT_S sends it ``REQUIRED`` (a frame a plain peer
reads where it expects the challenge) and closes, so each side says why in one line.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from taskq import defaults
from taskq.errors import AuthError
from taskq.protocol import frames

ENV_CA = "TASKQ_TLS_CA"
ENV_CERT = "TASKQ_TLS_CERT"
ENV_KEY = "TASKQ_TLS_KEY"
REQUIRED = b"#TASKQ-TLS-REQUIRED#"
HINT = "check --tls-ca/--tls-cert/--tls-key (or TASKQ_TLS_*) on both sides"


class TLSError(AuthError):
    """A TLS handshake failed, or one side speaks TLS and the other does not."""


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS settings: ``ca`` verifies the other side; ``cert``/``key`` are this side's.

    A master needs ``cert`` and ``key`` (with ``ca`` it requires client certificates signed
    by it: mutual TLS); a client or worker needs ``ca`` (or the system's trust store) and,
    for mutual TLS, its own ``cert`` and ``key``."""

    ca: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("TLS needs both a certificate and its key (--tls-cert and "
                             "--tls-key), or neither")
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS {name} file {str(path)!r} does not exist")

    @classmethod
    def from_env(cls, ca: str | Path | None = None, cert: str | Path | None = None,
                 key: str | Path | None = None) -> TLS | None:
        """Options given, else TASKQ_TLS_CA/CERT/KEY; None when none is set (plain TCP)."""
        ca = ca or os.environ.get(ENV_CA) or None
        cert = cert or os.environ.get(ENV_CERT) or None
        key = key or os.environ.get(ENV_KEY) or None
        if ca is None and cert is None and key is None:
            return None
        return cls(ca, cert, key)

    def export(self) -> None:
        """Put these settings (file paths) in TASKQ_TLS_*, for the processes started from
        here (a worker's pool: ``taskq.current_client()`` in its tasks)."""
        for name, path in ((ENV_CA, self.ca), (ENV_CERT, self.cert), (ENV_KEY, self.key)):
            if path is not None:
                os.environ[name] = str(path)

    def server_context(self) -> ssl.SSLContext:
        if self.cert is None:
            raise ValueError("a TLS master needs --tls-cert and --tls-key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        if self.ca is not None:
            ctx.load_verify_locations(str(self.ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the host name
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca is not None:
            ctx.load_verify_locations(str(self.ca))
        else:
            ctx.load_default_certs()
        if self.cert is not None:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def reason(exc: BaseException) -> str:
    """One line saying why a handshake failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "WRONG_VERSION_NUMBER":
            return "the other side does not speak TLS (WRONG_VERSION_NUMBER)"
        return exc.reason or str(exc).splitlines()[0]
    if isinstance(exc, TimeoutError):
        return "no TLS handshake in time"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def spoke_first(fd: int, wait: float) -> bool:
    """Whether the peer sent anything within ``wait`` seconds (a TLS peer does)."""
    readable, _, _ = select.select([fd], [], [], wait)
    return bool(readable)


def tell_plain_peer(fd: int) -> None:
    """Send a plain-text peer a frame saying TLS is required, where it awaits a challenge."""
    with contextlib.suppress(OSError):  # it may be gone already
        frames.write_message(fd, [REQUIRED + b" this master requires TLS; " + HINT.encode()])


def server_handshake(fd: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """Run the master's side of the handshake on ``fd``. The SSLSocket owns ``fd`` from
    now on: it is closed if the handshake fails, so its connection must forget it."""
    sock = socket.socket(fileno=fd)
    sock.settimeout(defaults.HANDSHAKE_TIMEOUT_S)
    return context.wrap_socket(sock, server_side=True)


def client_handshake(fd: int, context: ssl.SSLContext, host: str,
                     timeout: float) -> ssl.SSLSocket:
    """The peer's side, verifying the master as ``host``; owns ``fd`` as above."""
    sock = socket.socket(fileno=fd)
    sock.settimeout(timeout)
    return context.wrap_socket(sock, server_hostname=host)


def read_exact(sock: ssl.SSLSocket, view: memoryview) -> None:
    pos = 0
    while pos < len(view):
        n = sock.recv_into(view[pos:])
        if n == 0:
            if pos == 0:
                raise EOFError
            raise OSError("got end of file during message")
        pos += n


def read_frame(sock: ssl.SSLSocket, limit: int, frame_timeout: float,
               idle_timeout: float | None) -> bytearray:
    """One framed message, as ``frames.read_message`` reads it, through the TLS layer: the
    wait for its first byte is ``idle_timeout`` (None: unbounded), the rest of it at most
    ``frame_timeout`` per read."""
    head = bytearray(4)
    sock.settimeout(idle_timeout)
    n = sock.recv_into(head, 1)
    if n == 0:
        raise EOFError
    sock.settimeout(frame_timeout)
    try:
        read_exact(sock, memoryview(head)[1:])
        (size,) = frames._LEN.unpack(head)
        if size == -1:
            long = bytearray(8)
            read_exact(sock, memoryview(long))
            (size,) = frames._LONG.unpack(long)
        if size < 0 or size > limit:
            raise frames.FrameTooLarge(f"a frame claims {size} bytes; at most {limit} are "
                                     f"accepted", size)
        buf = bytearray(size)
        read_exact(sock, memoryview(buf))
    except TimeoutError:
        raise frames.FrameStalled("a frame stopped arriving", -1) from None
    return buf
