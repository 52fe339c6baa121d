"""Running a master: restore the journal, serve the broker, stop cleanly.

    journal.load ──► BrokerState ──► Broker (+ reaper) ──► managers.serve ──► accept loop
                                                   stop event (SIGTERM/SIGINT) ──┘
    on stop: close the listener, wake every waiter, flush and close the journal.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from taskq import defaults, logs
from taskq.master import http
from taskq.master.broker import Broker
from taskq.master.http import HttpConfig
from taskq.master.journal import Journal
from taskq.master.owned import Owned
from taskq.master.state import RESTORING, BrokerState
from taskq.net import managers
from taskq.net.keys import KeyRing
from taskq.net.tls import TLS
from taskq.protocol.api import CALLS

log = logs.get_logger(__name__)


# The long-polls that wait in the master's loop holding no thread, each with the argument a
# rerun clears (what the first run already applied: acknowledged results, answers).
PARKABLE: dict[str, int | None] = {
    "take": CALLS["take"].params.index("answers"),
    "fetch": CALLS["fetch"].params.index("ack"),
    "report": CALLS["report"].params.index("results"),  # parks only with none, to confirm
    "submit": None,  # parks for room in the queue, before it takes anything
    "flush": None,  # parks until the journal has the ticket it names
}
# Calls that never block (a long-poll parks instead), each with the flag that makes it wait
# for the journal (None: none): small ones run on the master's loop thread itself.
QUICK: dict[str, int | None] = {
    **dict.fromkeys(["take", "report", "fetch", "beat", "heartbeat", "register", "hello",
                     "info", "release", "flush"]),
    "submit": CALLS["submit"].params.index("durable"),
}


@dataclass(kw_only=True, slots=True)
class MasterConfig:
    host: str
    port: int
    authkey: bytes
    state: Path | None  # journal file; None keeps everything in memory
    lost_after: float = defaults.LOST_AFTER_S
    max_lost: int = defaults.MAX_LOST_ATTEMPTS
    max_payload: int = int(defaults.MAX_PAYLOAD_MB * 1024 * 1024)
    max_pending: int = defaults.MAX_PENDING
    abandoned_ttl: float = defaults.RESULT_TTL_S  # a gone Client's unfetched results
    result_ttl: float = defaults.KEPT_RESULT_TTL_S  # results kept by id (a task's default)
    tls: TLS | None = None  # with it, every connection speaks TLS
    more_keys: tuple[bytes, ...] = ()  # also accepted from peers (a key being rotated out)
    http: HttpConfig | None = None  # the web page and /metrics; None serves none
    http_is_default: bool = False  # the default address: a busy port is a warning, not fatal
    history_s: float = defaults.HISTORY_KEEP_S


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit: each connected peer
    holds descriptors, and the usual soft limit (1,024) would cap a master near 250 workers.
    Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def build_broker(config: MasterConfig) -> tuple[Broker, Journal | None]:
    state = BrokerState(lost_after=config.lost_after, max_lost=config.max_lost,
                        max_payload=config.max_payload)
    state.history.keep_s = config.history_s
    state.result_ttl = config.result_ttl
    journal = None
    if config.state is not None:
        state.restore_hold_until = RESTORING  # until it listens: see run()
        journal = Journal(config.state)
        gc.disable()  # the load makes millions of objects and no cycle: no collection for it
        try:
            tasks, results = journal.load(state)
        finally:
            gc.enable()
        gc.freeze()  # what was restored stays: later collections need not walk it
        log.info("journal_loaded", path=str(config.state), tasks=tasks, results=results)
    broker = Broker(state, journal, max_pending=config.max_pending,
                    abandoned_ttl=config.abandoned_ttl)
    if journal is not None:
        count = journal.load_primitives(broker.prims, time.monotonic())
        log.info("primitives_loaded", count=count)
    return broker, journal


def run(config: MasterConfig, stop: threading.Event, announce: Callable[[str], None],
        notice: Callable[[str], None] | None = None) -> int:
    """Serve until ``stop`` is set; ``announce`` gets "host:port" once it accepts, then
    ``notice`` gets the web page's URL, or that it is off and why."""
    files = raise_open_files_limit()
    broker, journal = build_broker(config)
    web = None
    try:
        web, web_off = _serve_http(config, broker)
        keyring = KeyRing([config.authkey, *config.more_keys])
        try:
            server = managers.serve(Owned(broker, keyring.in_use), config.host, config.port,
                                    keyring, max_payload=config.max_payload,
                                    tls_settings=config.tls, parkable=PARKABLE,
                                    quick=QUICK, peer_gone=broker.peer_gone)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise OSError(exc.errno, f"port {config.port} on {config.host} is in use (another "
                          f"taskq master?): stop it, or give this one another --port") from None
    except BaseException:
        if web is not None:
            http.stop(web)
        broker.close()
        raise
    host, port = cast("tuple[str, int]", server.address)[:2]
    if config.state is not None:  # restored tasks: their claim window starts as it accepts
        window = max(defaults.RESTORE_CLAIM_S, config.lost_after)
        broker.open_claims(time.monotonic() + window)
    broker.start_reaper()
    accepter = managers.run_server(server)
    if web is not None:  # /healthz: accepting while the accept loop runs, until the stop
        web.health.journal = journal
        web.health.accepting = lambda: accepter.is_alive() and not stop.is_set()
    log.info("master_started", address=f"{host}:{port}", durable=config.state is not None,
             open_files=files,
             tls="mutual" if config.tls and config.tls.ca else "on" if config.tls else "off")
    announce(f"{host}:{port}")
    if notice is not None:  # after: readers of the first line go on
        notice(f"taskq master dashboard on {web.url}" if web is not None
               else f"taskq master dashboard off: {web_off}")
    stop.wait()
    log.info("master_stopping")
    managers.stop_server(server)
    if web is not None:
        http.stop(web)
    broker.close()
    log.info("master_stopped")
    return 0


def _serve_http(config: MasterConfig, broker: Broker) -> tuple[http.WebServer | None, str]:
    """Start the web server (or say why there is none); at the default address, a port in
    use only skips it."""
    if config.http is None:
        return None, "--http off"
    try:
        return http.serve(config.http, broker), ""
    except OSError as exc:
        if not config.http_is_default:
            raise OSError(f"cannot serve the web page on {config.http.host}:"
                          f"{config.http.port}: {exc.strerror or exc}") from None
        where = f"{config.http.host}:{config.http.port}"
        log.warning("http_not_started", address=where, error=exc.strerror or str(exc),
                    hint="pass --http HOST:PORT or --http off")
        return None, (f"{where}: {exc.strerror or exc} (pass --http HOST:PORT, --http :0 for a "
                      f"free port, or --http off)")
