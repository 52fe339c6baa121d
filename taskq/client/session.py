"""A process's (or client's) leases on shared primitives, renewed by a background thread.

    Lock.acquire / Queue.get ── hold(token, lease) ──► Session._leases
    renewer thread ── prim_renew(session_id, tokens) every shortest lease / RENEW_DIVISOR
         └── tokens the master no longer has ──► lost (release() then raises)

A process that dies stops renewing: the master frees its slots and takes back its queue
items in flight when their leases run out. The thread lingers RENEWER_IDLE_S with nothing
to renew, so a lock taken and released in a loop does not start a thread each time.
"""

from __future__ import annotations

import threading
import time
import uuid

from taskq import logs
from taskq.errors import ConnectError
from taskq.protocol.api import BrokerAPI

log = logs.get_logger(__name__)

RENEW_DIVISOR = 3  # leases are renewed this many times per lease: two renewals may fail
RENEWER_IDLE_S = 10.0  # how long the renewer thread waits for something to renew, then ends


class Session:
    """One process's (or client's) holdings, their leases renewed by a background thread."""

    def __init__(self, remote: BrokerAPI) -> None:
        self.remote = remote
        self.session_id = uuid.uuid4().hex
        self._leases: dict[str, float] = {}  # token -> lease
        self.lost: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, token: str, lease: float) -> None:
        with self._cond:
            if not self._leases or lease < min(self._leases.values()):
                self._cond.notify_all()  # the renewer's next round must come sooner
            self._leases[token] = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                                name="taskq-renew")
                self._thread.start()

    def drop(self, token: str) -> bool:
        """Stop renewing ``token``; False if its lease had already run out."""
        with self._cond:
            self._leases.pop(token, None)
            if token in self.lost:
                self.lost.discard(token)
                return False
            return True

    def _renew_loop(self) -> None:
        """Renew every lease each ``lease / RENEW_DIVISOR`` (the shortest held), counted
        from the last renewal, or from when something was first held again."""
        last = time.monotonic()
        while (tokens := self._next_round(last)) is not None:
            self._renew(tokens)
            last = time.monotonic()

    def _next_round(self, last: float) -> list[str] | None:
        """Wait until a renewal is due; None (the thread ends) after RENEWER_IDLE_S idle."""
        with self._cond:
            while True:
                if not self._leases:
                    if not self._cond.wait_for(lambda: self._leases, RENEWER_IDLE_S):
                        self._thread = None
                        return None
                    last = time.monotonic()  # just granted: good for a whole lease
                every = max(min(self._leases.values()) / RENEW_DIVISOR, 0.05)
                left = last + every - time.monotonic()
                if left <= 0:
                    return list(self._leases)
                self._cond.wait(left)

    def _renew(self, tokens: list[str]) -> None:
        try:
            lost = self.remote.prim_renew(self.session_id, tokens)
        except ConnectError:  # the link is closed, or the master stayed away: all is lost
            lost = tokens
        except Exception as exc:  # the link retries by itself; try again next round
            log.warning("lease_renew_failed", error=type(exc).__name__)
            return
        with self._cond:
            for token in lost:
                if token in self._leases:
                    self.lost.add(token)
                    del self._leases[token]
                    log.warning("lease_lost", token=token)

