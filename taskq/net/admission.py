"""Admitting new connections: a fixed set of handshake threads, newest connection first.

    accepter ── admit(conn) ──► stack (newest on top) ──► HANDSHAKE_THREADS: handshake(conn)
                                  └─ waited longer than its peer waits (``patience``):
                                     dropped unserved (the peer gave up, and tries again)

A crowd that reconnects at once (thousands of workers finding a restarted master) arrives
faster than handshakes can be done. Served oldest first, every handshake would go to a peer
that gave up before its turn came, and none would get in; served newest first, each is done
while its peer still waits, and those whose peers stopped waiting are dropped for the cost
of a close.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class Admission:
    """Handshake threads fed newest first (see the module docstring)."""

    def __init__(self, handshake: Callable[[Any], None], drop: Callable[[Any], None], *,
                 threads: int, patience: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._handshake = handshake
        self._drop = drop
        self._patience = patience
        self._clock = clock
        self._waiting: deque[tuple[float, Any]] = deque()  # (admitted at, conn), oldest left
        self._cond = threading.Condition()
        self._stopped = False
        self.threads = [threading.Thread(target=self._serve, name=f"taskq-handshake-{i}",
                                         daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def admit(self, conn: Any) -> None:
        with self._cond:
            if not self._stopped:
                self._waiting.append((self._clock(), conn))
                self._cond.notify()
                return
        self._drop(conn)

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _next(self) -> tuple[Any, list[Any]]:
        """The newest connection (None once stopped), and those whose peers gave up."""
        with self._cond:
            while not self._waiting and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None, []
            conn = self._waiting.pop()[1]
            stale = []
            oldest = self._clock() - self._patience
            while self._waiting and self._waiting[0][0] < oldest:
                stale.append(self._waiting.popleft()[1])
            return conn, stale

    def _serve(self) -> None:
        while True:
            conn, stale = self._next()
            for old in stale:
                self._drop(old)
            if conn is None:
                return
            with contextlib.suppress(Exception):  # handshake logs its own failures
                self._handshake(conn)

    def stop(self) -> None:
        """Serve no more; drop those still waiting."""
        with self._cond:
            self._stopped = True
            left = [conn for _, conn in self._waiting]
            self._waiting.clear()
            self._cond.notify_all()
        for conn in left:
            self._drop(conn)
