"""How a worker keeps the master hearing from it: when it beats, what a beat says, and how
long its calls may take before the link counts as dead.

    join / beat / poll answers ── told(interval, lost_after) ──► interval
    pump, every turn ── due(now)? ── beat(digest, pool) ──► Beat(digest, running, memory,
                                                                  progress)
    poll ── poll_wait(): 2/3 of the silence the master allows until the pump first calls (the
            poll is then what keeps the worker heard, on its one connection),
            PARKED_POLL_MAX_S after
    pump's calls ── quick(link): answered within the master's lost deadline, or the link
                    is dead (a partition) and the worker reconnects

The Worker (``taskq.worker.worker``) owns the orchestration: it calls the master and acts
on the answers (join again, send the held list, drain).
"""

from __future__ import annotations

import os
from typing import Any

from taskq import defaults
from taskq.net.link import Link
from taskq.protocol import messages
from taskq.protocol.api import BrokerAPI
from taskq.worker.pools.child_record import resident_bytes
from taskq.worker.pools.local import LocalPool
from taskq.worker.pools.process import ProcessPool

Pool = ProcessPool | LocalPool


class Beats:
    """A worker's heartbeat schedule and vitals (see the module docstring)."""

    def __init__(self, heartbeat: float, link: Link) -> None:
        self.least = heartbeat  # the interval it was configured with (the floor)
        self.interval = heartbeat  # or longer, as the master says (a big crowd)
        self.next_at = 0.0  # when the pump beats next (monotonic)
        self.pump_called = False  # until then the poll alone keeps it heard
        self.lost_after = defaults.LOST_AFTER_S  # the master's, once it says
        self._link = link
        self._quick: tuple[float, BrokerAPI] = (0.0, link.remote)
        self._progress_left: dict[str, Any] = {}  # progress beyond one beat's share

    def told(self, interval: float, lost_after: float | None = None) -> None:
        """The master said the interval (a join, a beat's or a poll's answer)."""
        self.interval = max(self.least, interval)
        if lost_after is not None:
            self.lost_after = lost_after

    def due(self, now: float) -> bool:
        """Is the pump's beat due? Never before the pump's first call (the poll's answers
        keep the worker heard meanwhile)."""
        if now < self.next_at:
            return False
        self.next_at = now + self.interval
        return self.pump_called

    def beaten(self, now: float) -> None:
        """The pump's beat was answered: the next one is an interval (as told) from now."""
        self.next_at = now + self.interval

    def silence(self) -> float:
        """How long the master lets this worker be silent before it takes it for lost."""
        return max(self.lost_after, defaults.LOST_BEATS * self.interval)

    def poll_wait(self) -> float:
        """How long a poll may wait: until the pump first calls, two thirds of the allowed
        silence (the poll is then what keeps the worker heard; each cycle of it costs the
        master about two beats, so it comes less often than beats would, and still a whole
        heartbeat interval, at least, before the master would take the worker for lost)."""
        if self.pump_called:
            return defaults.PARKED_POLL_MAX_S
        return min(defaults.PARKED_POLL_MAX_S, self.silence() * 2 / 3)

    def quick(self) -> BrokerAPI:
        """The broker for the pump's calls (reports, beats: they never wait): one not
        answered by the time the master would take this worker for lost means a dead link
        (a partition), so the worker reconnects then rather than after CALL_TIMEOUT_S."""
        self.pump_called = True  # its own connection is open from now on
        silence = self.silence()
        if silence != self._quick[0]:
            self._quick = (silence, self._link.within(silence))
        return self._quick[1]

    def beat(self, digest: int, pool: Pool) -> messages.Beat:
        """A beat: ``digest`` of what the worker holds (``messages.held_digest``), what its
        pool runs, its memory and its tasks' progress."""
        return messages.Beat(held=digest, running=pool.running(), memory=memory(pool),
                             progress=self._progress(pool))

    def _progress(self, pool: Pool) -> dict[str, tuple[Any, ...]] | None:
        """What the pool's tasks reported since the last beat, as plain tuples (the
        master loads nothing else); None when nothing changed (the usual case)."""
        changed = {**self._progress_left, **pool.progress()}
        if not changed:
            return None
        items = list(changed.items())
        self._progress_left = dict(items[defaults.PROGRESS_PER_HEARTBEAT:])  # the next beat's
        return {task_id: tuple(value) for task_id, value in
                items[:defaults.PROGRESS_PER_HEARTBEAT]}


def memory(pool: Pool) -> int:
    """Resident bytes of this worker and its pool processes (0 where unknown)."""
    return sum(map(resident_bytes, [os.getpid(), *pool.pids()]))
