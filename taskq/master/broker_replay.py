"""The broker's calls on dead letters: list the tasks that failed for good, and replay them.

Mixed into ``taskq.master.broker.Broker``, whose lock, state, clock, takers and journal they
share. A replay is journaled (the new task and the dead letter's link to it) before it
answers, as a durable submit is::

    taskq failed / page ── dead_letters(queue, since) ── lock ─► DeadLetters.live ─► rows
    taskq replay / Client.replay / page ── replay(ids, new ids, outbox) ── lock ─►
        BrokerState.replay ─► commit ─► takers woken ─► unlock ─► journal.wait ─► [Replayed]
"""

from __future__ import annotations

from typing import Any

from taskq import logs
from taskq.master.broker_core import BrokerCore
from taskq.protocol.replies import Replayed

log = logs.get_logger(__name__)


class ReplayCalls(BrokerCore):
    """See the module docstring."""

    def dead_letters(self, *, queue: str | None = None, since: float | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """The tasks that failed for good and can be replayed, newest first: of one queue,
        ended since a wall time (seconds since the epoch)."""
        with self._lock:
            letters = self._state.dead.live(queue, since)[:max(1, limit)]
            rows = [(d, list(d.replayed_as)) for d in letters]
        # shaped outside the lock: a function's name is read from its pickle on first use
        return [d.row() | {"replayed_as": replays} for d, replays in rows]

    def replay(self, task_ids: list[str], new_ids: list[str], *, outbox: str,
               echo: bool = False) -> list[Replayed]:
        """Run these failed tasks again as the new tasks ``new_ids`` of ``outbox``."""
        with self._lock:
            state, now = self._state, self._clock()
            out = state.replay(task_ids, new_ids, outbox, now, echo=echo)
            state.touch(outbox, now)
            queues = {state.tasks[r.new_id].msg.options.queue for r in out
                      if r.new_id in state.tasks}
            ticket = self._commit(True)
            if queues:
                self._takers.wake(len(out), queues)
            journal = self._journal
        if ticket and journal is not None:
            journal.wait(ticket)
        for r in out:
            if r.new_id:
                log.info("task_replayed", task_id=r.task_id, replay=r.new_id, outbox=outbox)
        return out
