"""The broker's calls for an operator's controls: pause, resume and purge a queue; drain a
worker (the pure logic is ``taskq.master.state.controls``).

Mixed into ``taskq.master.broker.Broker``, whose lock, state, clock, journal and parked
polls they share. A pause or a purge answers once the journal has it::

    taskq queue pause|resume|purge ── queue_pause / queue_purge ──► lock ─► BrokerState
        ─► journal (durable before the answer) ─► wake the parked polls (a resume has work)
    taskq worker drain ── worker_drain ──► the worker's next beat is answered with drain
"""

from __future__ import annotations

from taskq import logs
from taskq.master.broker_core import BrokerCore

log = logs.get_logger(__name__)


class ControlCalls(BrokerCore):
    """An operator's controls over queues and workers; see the module docstring."""

    def queue_pause(self, name: str, *, paused: bool) -> bool | None:
        """Pause (or resume) a queue; False if it already was, None if the master does not
        know the queue (see ``state.controls``). Journaled before it answers."""
        _check_name(name)
        with self._lock:
            changed = self._state.pause_queue(name, bool(paused))
            ticket = self._commit(urgent=True)
            if changed and not paused:
                self._takers.wake_all()
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)
        if changed:
            log.warning("queue_paused" if paused else "queue_resumed", queue=name)
        return changed

    def queue_purge(self, name: str) -> int | None:
        """Cancel every task of a queue that no worker holds; returns how many (None: the
        master does not know the queue). Journaled before it answers."""
        _check_name(name)
        with self._lock:
            purged = self._state.purge_queue(name, self._clock())
            if purged is None:
                return None
            ticket = self._commit(urgent=True)
            if purged:
                self._space.notify_all()
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)
        log.warning("queue_purged", queue=name, tasks=len(purged))
        return len(purged)

    def worker_drain(self, name: str) -> bool:
        """Ask a worker (by its public id) to drain: it finishes what it runs, takes
        nothing new, hands back what it has not begun and exits 0. False: no such worker."""
        _check_name(name)
        with self._lock:
            found = self._state.drain_worker(name)
            if found:  # a worker that has run nothing hears it through its parked poll
                self._takers.wake_workers([name])
        if found:
            log.warning("worker_drain_asked", worker_id=name)
        return found


def _check_name(name: object) -> None:
    if type(name) is not str or not name:
        raise ValueError(f"expected a non-empty name, not {name!r}")
