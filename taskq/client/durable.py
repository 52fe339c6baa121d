"""Durable enqueue: ``Client.flush`` returns once the master has journaled every task the
client submitted before it (the web application's pattern: submit, flush, answer with the
task ids; the process may then exit and lose nothing).

    Client.flush ── the client's batches all sent and taken by the master (its sender)
        └── remote.flush(outbox) -> ticket ── remote.flush(outbox, upto=ticket, wait) ... 0
"""

from __future__ import annotations

import math
import time

from taskq import defaults
from taskq.protocol.api import BrokerAPI


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (a monotonic time; inf: none), at least 0."""
    return max(0.0, deadline - time.monotonic())


def until_journaled(remote: BrokerAPI, outbox: str, deadline: float) -> bool:
    """Wait until the master's journal has every change made before this call (at once for
    a master without a journal); False if ``deadline`` came first."""
    ticket = remote.flush(outbox)
    while ticket:
        wait = min(left(deadline), defaults.PARKED_POLL_MAX_S)
        ticket = remote.flush(outbox, upto=ticket, wait=wait)
        if ticket and not left(deadline):
            return False
    return True


def deadline_of(timeout: float | None) -> float:
    return math.inf if timeout is None else time.monotonic() + max(0.0, timeout)
