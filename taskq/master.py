"""Running a master: restore the journal, serve the broker, stop cleanly.

    journal.load ──► BrokerState ──► Broker (+ reaper) ──► transport.serve ──► accept loop
                                                   stop event (SIGTERM/SIGINT) ──┘
    on stop: close the listener, wake every waiter, flush and close the journal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from taskq import defaults, logs, transport
from taskq.journal import Journal
from taskq.service import Broker
from taskq.state import BrokerState
from taskq.tls import TLS

log = logs.get_logger("taskq.master")


@dataclass(slots=True)
class MasterConfig:
    host: str
    port: int
    authkey: bytes
    state: Path | None  # journal file; None keeps everything in memory
    lost_after: float = defaults.LOST_AFTER_S
    max_lost: int = defaults.MAX_LOST_ATTEMPTS
    max_payload: int = int(defaults.MAX_PAYLOAD_MB * 1024 * 1024)
    max_pending: int = defaults.MAX_PENDING
    result_ttl: float = defaults.RESULT_TTL_S
    tls: TLS | None = None  # with it, every connection speaks TLS
    more_keys: tuple[bytes, ...] = ()  # also accepted from peers (a key being rotated out)


def build_broker(config: MasterConfig) -> Broker:
    state = BrokerState(lost_after=config.lost_after, max_lost=config.max_lost,
                        max_payload=config.max_payload)
    journal = None
    if config.state is not None:
        state.restore_hold_until = time.monotonic() + defaults.RESTORE_CLAIM_S
        journal = Journal(config.state)
        tasks, results = journal.load(state)
        log.info("journal_loaded", path=str(config.state), tasks=tasks, results=results)
    broker = Broker(state, journal, max_pending=config.max_pending,
                    result_ttl=config.result_ttl)
    if journal is not None:
        count = journal.load_primitives(broker.prims, time.monotonic())
        log.info("primitives_loaded", count=count)
    return broker


def run(config: MasterConfig, stop: threading.Event, announce: Callable[[str], None]) -> int:
    """Serve until ``stop`` is set; ``announce`` gets "host:port" once it accepts."""
    broker = build_broker(config)
    try:
        server = transport.serve(broker, config.host, config.port, config.authkey,
                                 config.max_payload, config.tls, list(config.more_keys))
    except BaseException:
        broker.close()
        raise
    host, port = cast("tuple[str, int]", server.address)[:2]
    broker.start_reaper()
    transport.run_server(server)
    log.info("master_started", address=f"{host}:{port}", durable=config.state is not None,
             tls="mutual" if config.tls and config.tls.ca else "on" if config.tls else "off")
    announce(f"{host}:{port}")
    stop.wait()
    log.info("master_stopping")
    transport.stop_server(server)
    broker.close()
    log.info("master_stopped")
    return 0
