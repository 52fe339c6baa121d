"""The peer's side of a master: a proxy of its broker, connect with retry, and ``Link``.

    client / worker / CLI ── Link.call ── BrokerProxy ══ transport.client (TLS, key, versions)
                               │ on a dead socket: reconnect (bounded), on_connect()
"""

from __future__ import annotations

import errno
import functools
import random
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing import managers
from typing import Any

from taskq import defaults, logs
from taskq.errors import AuthError, ConnectError, KeyRejected, MasterError
from taskq.net import tls
from taskq.net.managers import LINK_ERRORS, BrokerProxy, broker_proxy
from taskq.net.secure import use_tls
from taskq.protocol.api import BrokerAPI, Remote

log = logs.get_logger(__name__)

def open_proxy(address: tuple[str, int], authkey: bytes) -> BrokerProxy:
    """One connection attempt: a fresh proxy to the master's broker, with this thread's
    connection open (one handshake)."""
    proxy = broker_proxy(address, authkey)
    try:
        proxy.connect_here()
    except managers.RemoteError as exc:
        raise ConnectError(f"the master at {address[0]}:{address[1]} refused: {exc}") from None
    return proxy


def connect(address: tuple[str, int], authkey: bytes, within: float,
            cancel: threading.Event | None = None) -> BrokerProxy:
    """Open a proxy, retrying with backoff for ``within`` seconds while the master is down
    (or until ``cancel`` is set)."""
    deadline = time.monotonic() + within
    delay = 0.05
    cancel = cancel or threading.Event()
    while True:
        try:
            return open_proxy(address, authkey)
        except AuthError:  # a wrong key or version: trying again will not help
            raise
        except LINK_ERRORS as exc:
            # the wait is the backoff between attempts, cut short by cancel; full jitter, so
            # that the peers of a restarted master do not all come back at the same instant
            pause = random.uniform(delay / 2, delay)  # noqa: S311 -- spreading, not secrecy
            if cancel.wait(min(pause, max(0.0, deadline - time.monotonic()))):
                raise ConnectError(f"stopped trying to reach the master at "
                                   f"{address[0]}:{address[1]}") from None
            if time.monotonic() >= deadline:
                raise ConnectError(unreached(f"{address[0]}:{address[1]}", within, exc)) from None
            delay = min(delay * 2, 1.0)


_NO_ROUTE = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN)


def unreached(where: str, within: float, exc: BaseException) -> str:
    """Why no master could be reached at ``where``, and what to check, by how it failed."""
    tried = f" (tried for {round(within, 1):g} s)" if within >= 0.05 else ""
    if isinstance(exc, ConnectError):  # the master answered, and refused: it says why
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return (f"could not connect to the master at {where}: nothing listens on that port"
                f"{tried}; is `taskq master` running there, on that port?")
    if isinstance(exc, TimeoutError | socket.gaierror) or (
            isinstance(exc, OSError) and exc.errno in _NO_ROUTE):
        return (f"could not reach {where} ({exc.strerror or exc}){tried}; check the host "
                f"name, and that the network lets this machine through to that port")
    if isinstance(exc, BlockingIOError):  # the read timed out: no first message came
        said = f"said nothing in {defaults.CONNECT_TIMEOUT_S:g} s"
    elif isinstance(exc, EOFError | ConnectionError):
        said = "closed the connection"
    else:  # a frame taskq cannot read ("bad message length"), a challenge it does not know
        said = "answered in another protocol"
    return (f"no taskq master answered at {where}: something accepted the connection but "
            f"{said}{tried}; check the address: is that port a taskq master's?")


class Link:
    """A bounded, self-healing link to the master shared by a process's threads.

    ``call`` runs a broker method; when the link breaks it reconnects (for at most
    ``reconnect_for`` seconds), runs ``on_connect`` with the new proxy, and tries once more.
    """

    def __init__(self, address: tuple[str, int], authkey: bytes, *,
                 reconnect_for: float = defaults.RECONNECT_FOR_S,
                 on_connect: Callable[[BrokerAPI], None] | None = None,
                 tls_settings: tls.TLS | None = None, key_hint: str | None = None) -> None:
        use_tls(address, tls_settings)
        self._key_hint = key_hint  # where this peer's user sets the key, for a rejected one
        self.address = address
        self._authkey = authkey
        self.reconnect_for = reconnect_for
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._proxy: BrokerProxy | None = None
        self._generation = 0
        self._closed = False
        self._failed: ConnectError | None = None
        self._cancel = threading.Event()
        self.remote = Remote(self.call)

    def open(self, within: float) -> None:
        with self._lock:
            self._establish(within)

    def _establish(self, within: float) -> None:
        """Connect and run on_connect (lock held), retrying both until ``within`` runs out."""
        deadline = time.monotonic() + within
        while True:
            try:
                proxy = connect(self.address, self._authkey,
                                max(0.0, deadline - time.monotonic()), self._cancel)
            except KeyRejected as exc:
                if self._key_hint is None:
                    raise
                raise KeyRejected(exc.where, self._key_hint) from None
            try:
                if self._on_connect is not None:
                    self._on_connect(proxy.remote)
            except LINK_ERRORS as exc:
                proxy.discard()
                if time.monotonic() >= deadline or self._cancel.is_set():
                    raise ConnectError(f"lost the master at {self.address[0]}:"
                                       f"{self.address[1]} while joining it: {exc!r}") from None
                continue
            self._proxy = proxy
            self._generation += 1
            return

    def within(self, seconds: float) -> BrokerAPI:
        """The broker, with calls whose reply must come within ``seconds`` (not
        CALL_TIMEOUT_S): a quick call that bounds how late a dead link is noticed."""
        return Remote(functools.partial(self.call, within=seconds))

    def call(self, name: str, *args: Any, within: float | None = None) -> Any:
        while True:
            proxy, generation = self._proxy, self._generation
            if self._failed is not None:
                raise self._failed
            if self._closed or generation == 0:
                raise ConnectError("the link to the master is closed")
            if proxy is None:  # another thread is reconnecting: wait for it, then retry
                with self._lock:
                    continue
            try:
                return proxy.call(name, *args, within=within)
            except MasterError:
                raise
            except LINK_ERRORS as exc:
                proxy.discard()
                self._reconnect(generation, exc)

    def _reconnect(self, generation: int, exc: BaseException) -> None:
        with self._lock:
            if self._closed:
                raise ConnectError("the link to the master is closed")
            if generation != self._generation or self._failed is not None:
                return  # another thread already reconnected (or gave up)
            log.warning("master_link_lost", address=f"{self.address[0]}:{self.address[1]}",
                        error=type(exc).__name__)
            old, self._proxy = self._proxy, None
            if old is not None:
                old.sever()  # the other threads' calls on the dead link fail at once
                old.discard()
            try:
                self._establish(self.reconnect_for)
            except ConnectError as failure:
                self._failed = failure
                raise
            log.info("master_link_restored", address=f"{self.address[0]}:{self.address[1]}")

    def give_up_reconnecting(self) -> None:
        """From now on a broken link fails at once (a reconnect under way stops too)."""
        self._cancel.set()

    def close(self) -> None:
        self._cancel.set()
        with self._lock:
            self._closed = True
            if self._proxy is not None:
                self._proxy.discard()
                self._proxy = None
