"""All ``multiprocessing.managers`` wiring: the server, its sockets, the proxy and the link.

    client / worker thread ── Link.call ── BrokerProxy ══ TCP (authkey, TCP_NODELAY) ══╗
                                 │ on a dead socket: reconnect (bounded), on_connect()  ║
    master: Server ── accepter ── handshake threads ── serving.Loop ── Broker method ◄══╝
                                  (newest first: net.admission; a deep listen backlog)

The manager protocol is the standard library's; this module only sets it up well:
- sockets get TCP_NODELAY and keepalive; a connection must finish the handshake and its
  first request within HANDSHAKE_TIMEOUT_S, so a silent or garbage peer holds nothing;
- a rejected authkey is logged on the master (without key material) and raised on the
  caller as ``AuthError``, never as a traceback;
- every client read is bounded (SO_RCVTIMEO), every connect has a timeout;
- every frame is bounded before anything is allocated for it, on both sides: at most the
  master's --max-payload plus FRAME_OVER_PAYLOAD_BYTES (clients and workers learn it from
  the MasterInfo the master replies to hello, register and info); and a frame that has
  started must arrive in time (FRAME_TIMEOUT_S), however long a connection waits between
  requests. A frame over either bound closes its connection, logged as ``frame_rejected``
  or ``frame_stalled`` with the peer and the size it claimed;
- proxies keep their own thread-local connections, so a reconnect never reuses a dead one;
- a connection is, in order: TLS when the master has a certificate (``taskq.net.secure``), the
  authkey challenge (any key of the master's ``KeyRing``, logged by fingerprint), the
  version hello (``taskq.protocol.versions``), then the manager protocol, whose requests the master
  loads with ``taskq.protocol.restricted`` (only taskq's messages) and serves to the master's
  ``Owned`` (each peer reaches only what it owns); only the broker is served, none of the manager's
  own calls (shutdown, debug_info, ...).

The peer's side (``connect`` with retry, ``Link``) is ``taskq.net.link``; the framed
connection is ``taskq.net.connection``, TLS on it ``taskq.net.secure``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing import AuthenticationError, connection, managers
from traceback import format_exc
from typing import Any, Protocol, TypeVar

from taskq import defaults, logs
from taskq.errors import KeyRejected, MasterError, VersionMismatch
from taskq.net import serving, tls
from taskq.net.admission import Admission
from taskq.net.connection import (
    Connection,
    FrameDropped,
    adopt,
    frame_limit,
    peer_of,
    shut_down,
    tune,
)
from taskq.net.keys import KeyRing
from taskq.net.own_connection import OwnConnection
from taskq.net.secure import (
    TLSConnection,
    dropped_reason,
    read_first_message,
    tls_from_peer,
    tls_to_master,
)
from taskq.protocol import names, versions
from taskq.protocol.api import CALLS, EXPOSED, BrokerAPI, Remote

log = logs.get_logger(__name__)
T = TypeVar("T")
SERIALIZER = "taskq"
LINK_ERRORS = (OSError, EOFError, ConnectionError, managers.RemoteError, MasterError)

_ACCEPT_BACKOFF_S = 0.05  # after a failed accept (EMFILE): no busy loop
AUTH_HINT = "check TASKQ_AUTHKEY or --authkey-file: it must hold the master's key"


class Listener(connection.Listener):
    """The master's listener: a deeper backlog and tuned, time-limited new sockets whose
    frames are bounded as ``serve`` says."""

    max_frame = frame_limit(int(defaults.MAX_PAYLOAD_MB * 1024 * 1024))
    frame_timeout = defaults.FRAME_TIMEOUT_S
    tls_context: ssl.SSLContext | None = None

    def __init__(self, address: Any = None, family: Any = None, backlog: int = 1,
                 authkey: bytes | None = None) -> None:
        # deep enough for a crowd reconnecting at once (the kernel caps it at somaxconn)
        super().__init__(address, family, max(backlog, 4096), authkey)

    def accept(self) -> connection.Connection:
        conn = adopt(super().accept())
        conn.max_frame, conn.frame_timeout = self.max_frame, self.frame_timeout
        conn.restricted = True
        conn.tls_context = self.tls_context
        tune(conn.fileno(), defaults.HANDSHAKE_TIMEOUT_S, server=True)
        return conn


def client(address: tuple[str, int], authkey: bytes | None = None,
           timeout: float = defaults.CONNECT_TIMEOUT_S) -> connection.Connection:
    """Connect, tune, set up TLS if this master uses it, and answer the master's challenge;
    AuthError if the key is wrong (TLSError, VersionMismatch: other refusals)."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.setblocking(True)
    conn = Connection(sock.detach())
    tune(conn.fileno(), timeout, server=False)
    try:
        tls_to_master(conn, address, timeout)
        read_first_message(conn, address)
    except BaseException:
        conn.close()
        raise
    if authkey is not None:
        try:
            connection.answer_challenge(conn, authkey)
            connection.deliver_challenge(conn, authkey)
        except AuthenticationError:
            conn.close()
            raise KeyRejected(f"{address[0]}:{address[1]}", AUTH_HINT) from None
    try:
        versions.exchange(conn, f"{address[0]}:{address[1]}")
    except BaseException:
        conn.close()
        raise
    tune(conn.fileno(), defaults.CALL_TIMEOUT_S, server=False)
    if isinstance(conn, TLSConnection):
        conn.read_timeout = defaults.CALL_TIMEOUT_S
    return conn


managers.listener_client[SERIALIZER] = (Listener, client)  # type: ignore[attr-defined]


def _reply(call: Callable[[], Any]) -> tuple[str, Any]:
    """A served call's reply: its value, or the exception it raised (sent to the caller)."""
    try:
        return "#RETURN", call()
    except Exception as exc:
        return "#ERROR", exc


class Server(managers.Server):
    """The standard manager server, with bounded handshakes and a stoppable accept loop.
    A peer may only reach the broker: the standard server's other calls (shutdown,
    debug_info, ...) and its fallbacks (#GETVALUE, ...) are not served."""

    public = ["accept_connection"]
    fallback_mapping: dict[str, Any] = {}

    # set by managers.Server.__init__, and stop_event by serve()
    listener: connection.Listener
    authkey: bytes
    stop_event: threading.Event
    keyring: KeyRing  # set by serve()
    loop: serving.Loop  # serves every admitted connection (set by serve())
    handshakes: Admission  # admits new ones, newest first
    parkable: dict[str, int | None]  # calls that may park: the argument a rerun clears
    quick: dict[str, int | None]  # calls that never block: the flag that makes them slow
    peer_gone: Callable[[str, int], None] | None = None  # told the name of a peer whose
    # connection ended, and that connection's number

    def handle_request(self, conn: connection.Connection) -> None:
        """A new connection, on a handshake thread: admit it, answer its first request; a
        proxy's connection (``accept_connection``) then lives in the loop, any other ends."""
        kept = False
        try:
            kept = self._handle_request(conn)
        finally:
            if not kept:
                self.closed(conn)

    def closed(self, conn: connection.Connection) -> None:
        """A connection ended: close it, count its key out, and say whose it was (if the
        calls named their peer, ``serving.name_peer``) while the server runs."""
        with contextlib.suppress(OSError):
            conn.close()
        key = getattr(conn, "authkey_used", None)
        if key is not None:
            self.keyring.closed(key)
        peer = getattr(conn, "peer", None)
        if peer is not None and self.peer_gone is not None and not self.stop_event.is_set():
            try:  # on a request thread or the loop's: nothing may end it
                self.peer_gone(*peer)
            except Exception as exc:
                log.error("peer_gone_failed", error=repr(exc))

    def accepter(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn = self.listener.accept()
            except OSError:
                if self.stop_event.is_set():
                    return
                time.sleep(_ACCEPT_BACKOFF_S)  # out of descriptors: let some close first
                continue
            self.handshakes.admit(conn)

    def accept_connection(self, c: connection.Connection, name: str) -> None:
        """A proxy's own connection: say yes, then serve its calls from the loop."""
        c.send(("#RETURN", None))
        self.loop.add(c)

    def read_call(self, conn: connection.Connection) -> serving.Pending:
        """Read one request of a served connection: the call to run, and how to run it
        again once parked (its acknowledgements cleared: they were applied)."""
        ident, name, args, kwds = conn.recv()
        obj, exposed, _ = self.id_to_obj[ident]
        if name not in exposed:
            raise PermissionError(f"{str(name)[:80]!r} is not served")
        function = getattr(obj, name)

        run = functools.partial(_reply, functools.partial(function, *args, **kwds))
        retry = None
        cleared = self.parkable.get(name, -1)
        if cleared is not None and 0 <= cleared < len(args):
            again = (*args[:cleared], type(args[cleared])(), *args[cleared + 1:])
            retry = functools.partial(_reply, functools.partial(function, *again, **kwds))
        return serving.Pending(loop=self.loop, conn=conn, run=run, retry=retry, reply=_reply,
                               parkable=name in self.parkable,
                               quick=self._quick(name, args, conn))

    def _quick(self, name: str, args: tuple[Any, ...], conn: Any) -> bool:
        """May this call run on the loop thread (it never blocks, and it is not TLS)?"""
        slow_if = self.quick.get(name, -1)
        if slow_if == -1 or isinstance(conn, TLSConnection):
            return False
        return slow_if is None or (slow_if < len(args) and not args[slow_if])

    @staticmethod
    def request_waiting(conn: Any) -> bool:
        """Is a whole small request there to read (on the loop thread)?"""
        waiting = getattr(conn, "request_waiting", None)
        return waiting is not None and bool(waiting(serving.QUICK_BYTES))

    def _admit(self, c: connection.Connection, peer: str) -> Any:
        """TLS, the challenge, the version hello, then the first request (returned); each
        refusal is logged and raised."""
        if isinstance(c, Connection) and c.tls_context is not None:
            tls_from_peer(c, c.tls_context)
        key = self.keyring.challenge(c)
        connection.answer_challenge(c, key)
        versions.check(c, peer)
        c.authkey_used = key  # type: ignore[attr-defined]
        log.info("peer_authenticated", peer=peer, key=self.keyring.opened(key))
        _, funcname, args, kwds = c.recv()
        if funcname not in self.public:
            raise PermissionError(f"{str(funcname)[:80]!r} is not served")
        return funcname, args, kwds

    def _handle_request(self, c: connection.Connection) -> bool:
        """Admit a connection and answer its first request; True if the loop now has it."""
        peer = peer_of(c)
        try:
            funcname, args, kwds = self._admit(c, peer)
        except AuthenticationError:
            log.warning("connection_rejected", peer=peer, reason="authkey did not match")
            return False
        except (VersionMismatch, tls.TLSError) as exc:
            log.warning("peer_refused", peer=peer, reason=str(exc))
            return False
        except FrameDropped:
            return False  # logged as it was dropped
        except Exception as exc:
            log.warning("connection_dropped", peer=peer, reason=dropped_reason(c, exc))
            return False
        _between_requests(c)
        if funcname == "accept_connection":
            self.accept_connection(c, *args, **kwds)
            return True
        try:
            msg: tuple[str, Any] = ("#RETURN", getattr(self, funcname)(c, *args, **kwds))
        except Exception:
            msg = ("#TRACEBACK", format_exc())
        try:
            c.send(msg)
        except Exception:
            log.debug("reply_failed", peer=peer)
        return False


def _between_requests(c: connection.Connection) -> None:
    """After its first request a connection may wait as long as it likes for the next one
    (keepalive notices a vanished peer), but a started frame, and every send, is bounded."""
    if isinstance(c, Connection):
        tune(c.fileno(), c.frame_timeout, server=True)
        c.idle = True
        if isinstance(c, TLSConnection):
            c.read_timeout = c.frame_timeout
    else:
        tune(c.fileno(), None, server=True)


# the id under which the master serves its broker, known to every peer in advance
BROKER_ID = "broker"

# the position of each call's ``wait`` argument, for its reply's time bound
_WAIT_AT = {name: call.params.index("wait") for name, call in CALLS.items()
            if "wait" in call.params}


class BrokerProxy(managers.BaseProxy):
    """Proxy of the master's broker: ``call(name, *args)`` for each call of ``BrokerAPI``, and
    ``remote``, the same typed."""

    _exposed_ = EXPOSED

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tls = OwnConnection()  # own connections: never share a dead one
        self._open: list[Any] = []  # every thread's connection, so that all can be severed
        self._open_lock = threading.Lock()

    def _connect(self) -> None:
        super()._connect()  # type: ignore[misc]
        with self._open_lock:
            self._open.append(self._tls.connection)

    def connect_here(self) -> None:
        """Open this thread's connection now (its handshake's errors are raised here)."""
        if getattr(self._tls, "connection", None) is None:
            self._connect()

    def call(self, name: str, *args: Any, within: float | None = None) -> Any:
        """Run a broker method; an exception raised in it arrives as ``MasterError``. Its
        reply must come within ``within`` (CALL_TIMEOUT_S unless given), plus the call's own
        ``wait`` if it has one (a long-poll), or the link is taken for dead."""
        try:
            conn = self._tls.connection
        except AttributeError:
            self._connect()
            conn = self._tls.connection
        at = _WAIT_AT.get(name)
        wait = args[at] if at is not None and at < len(args) else 0.0
        extra = float(wait) if isinstance(wait, int | float) and wait > 0 else 0.0
        conn.reads_within((defaults.CALL_TIMEOUT_S if within is None else within) + extra)
        try:
            return self._callmethod(name, args)
        except managers.RemoteError as exc:
            raise MasterError(f"the master failed in {name}: {_last_line(exc)}") from None

    @property
    def remote(self) -> BrokerAPI:
        return Remote(self.call)

    def discard(self) -> None:
        """Drop this proxy without telling the server (it may be gone)."""
        closer = getattr(self, "_close", None)
        if closer is not None:
            closer.cancel()
        conn = getattr(self._tls, "connection", None)
        if conn is not None:
            del self._tls.connection
            with self._open_lock:  # out of the list before it closes: its fd is never reused
                self._open.remove(conn)
            conn.close()

    def sever(self) -> None:
        """Shut down the connection of every thread using this proxy, so that a call blocked
        on a dead link (a long-poll in another thread) fails at once instead of waiting out
        its read timeout; each such thread then discards its own."""
        with self._open_lock:
            for conn in self._open:
                if not conn.closed:
                    shut_down(conn.fileno())


def _last_line(exc: managers.RemoteError) -> str:
    """The exception line of the master's traceback that a RemoteError carries."""
    lines = [ln.strip().rstrip("-") for ln in str(exc).splitlines() if ln.strip().strip("-")]
    return lines[-1] if lines else "unknown error"


def broker_proxy(address: tuple[str, int], authkey: bytes) -> BrokerProxy:
    """A proxy of the broker at ``address``: the master serves it under the fixed id
    BROKER_ID, so a peer needs no ``create``, ``incref`` or ``decref`` round (each one more
    connection and handshake); each thread that calls opens its own connection."""
    token = managers.Token(typeid="broker", address=address, id=BROKER_ID)
    return BrokerProxy(token, SERIALIZER, authkey=authkey, exposed=EXPOSED, incref=False)


def frame_timeout_setting() -> float:
    """FRAME_TIMEOUT_S, or the seconds the master's environment sets in ENV_FRAME_TIMEOUT."""
    text = os.environ.get(defaults.ENV_FRAME_TIMEOUT, "").strip()
    if not text:
        return defaults.FRAME_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{defaults.ENV_FRAME_TIMEOUT} must be a number of seconds above 0, "
                         f"not {text!r}")
    return seconds


class Served(Protocol):
    """What the master serves: each remote call by name (``taskq.master.owned.Owned``)."""

    @property
    def calls(self) -> Mapping[str, Callable[..., Any]]: ...


class _Guarded:
    """The broker as served: one attribute per call of ``served``, made once. An exception
    raised by a call is logged here and sent as ``managers.RemoteError`` (text only), which
    callers raise as ``MasterError``; the manager would otherwise send the exception object
    itself, indistinguishable on the caller's side from a failure of the link."""

    def __init__(self, served: Served) -> None:
        for name, method in served.calls.items():
            setattr(self, name, _guard(name, method))


def _guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return method(*args)
        except names.NotYours as exc:
            log.warning("call_refused", method=name, reason=str(exc))
            raise managers.RemoteError(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            log.error("broker_call_failed", method=name, error=repr(exc), exc_info=True)
            raise managers.RemoteError(f"{type(exc).__name__}: {exc}") from None

    return call


def serve(served: Served, host: str, port: int, keyring: KeyRing, *,
          max_payload: int = int(defaults.MAX_PAYLOAD_MB * 1024 * 1024),
          tls_settings: tls.TLS | None = None,
          parkable: dict[str, int | None] | None = None,
          quick: dict[str, int | None] | None = None,
          peer_gone: Callable[[str, int], None] | None = None) -> Server:
    """Bind the master's server (not yet accepting); ``server.address`` is the bound one.
    ``served`` is what peers call (the master's broker, already checking who owns what).
    Its connections read frames of at most ``frame_limit(max_payload)`` bytes, and with
    ``tls_settings`` speak TLS (with their ``ca``: only to peers with a certificate).
    Peers may answer the challenge with any key of ``keyring``. The calls in ``parkable``
    wait in the loop without a thread (``net.serving``); each names the argument that a
    rerun clears (its acknowledgements, applied on the first run), or None. The calls in
    ``quick`` never block, unless the flag argument each names is true (None: never): a
    small one runs on the loop thread itself. ``peer_gone`` is told the name of a peer
    (``serving.name_peer``) whose connection ended, and that connection's number."""
    context = None if tls_settings is None else tls_settings.server_context()

    server = Server({}, (host, port), keyring.keys[0], SERIALIZER)
    server.id_to_obj[BROKER_ID] = (_Guarded(served), set(served.calls), {})
    server.stop_event = threading.Event()
    server.keyring = keyring
    server.parkable = dict(parkable or {})
    server.quick = dict(quick or {})
    server.peer_gone = peer_gone
    server.loop = serving.Loop(server.read_call, server.closed,
                               server.request_waiting if server.quick else None)
    server.handshakes = Admission(server.handle_request, server.closed,
                                  threads=serving.HANDSHAKE_THREADS,
                                  patience=defaults.CONNECT_TIMEOUT_S)
    listener = server.listener
    if isinstance(listener, Listener):
        listener.max_frame = frame_limit(max_payload)
        listener.frame_timeout = frame_timeout_setting()
        listener.tls_context = context
    return server


def run_server(server: Server) -> threading.Thread:
    """Start the loop, and accepting connections in a daemon thread."""
    server.loop.start()
    thread = threading.Thread(target=server.accepter, name="taskq-accept", daemon=True)
    thread.start()
    return thread


def stop_server(server: Server) -> None:
    server.stop_event.set()
    server.listener.close()
    server.handshakes.stop()
    server.loop.stop()
