"""A process pool's slots lent out while a task waits on other tasks (its children, with
``taskq.current_client()``), so that a pool of N processes whose tasks all wait still runs
the tasks they wait for.

    child ── (SECEDE) ──► on_notice: the child is seceded (no job is written to it), the jobs
                          written ahead behind its task go back to pending (their places in
                          its pipe are dropped: it answers SKIPPED), extra += 1 ──► _fill
                          starts one more process
          ── (REJOIN) ──► extra -= 1; one process over the size retires (an idle one at
                          once, else the least busy once its jobs ended)

Only the driver thread (under ``_io``) runs this; ``seceded()`` is read by the worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from taskq.protocol import frames
from taskq.worker.pools.child_record import Child
from taskq.worker.pools.claims import Claims
from taskq.worker.pools.job import Job

_Queued = tuple[Job, list[frames.Part]]
_PLACE = "\0lent:"  # a job moved off a seceded child: its place there, dropped


class Seceding:
    """The seceding half of ``PoolDriver`` (which provides what is declared here)."""

    _procs: int
    _extra: int
    _children: list[Child]
    _claims: dict[Child, Claims]
    _dropped: set[str]
    _cond: threading.Condition
    _pending: deque[_Queued]
    wake: Callable[[], None]  # OutcomeQueue's: the worker's pump returns

    def _detach(self, child: Child, retire: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover

    def seceded(self) -> int:
        """Running tasks that lent their process's slot out while they wait."""
        return self._extra

    def _size(self) -> int:
        """How many processes the pool keeps now: its size, and one per slot lent out."""
        return self._procs + self._extra

    def _on_notice(self, child: Child, secede: bool) -> None:
        if secede and not child.seceded:
            child.seceded = True
            self._extra += 1
            self._hand_on(child)
            self.wake()  # the worker leases for the slot lent out
        elif not secede and child.seceded:
            child.seceded = False
            self._extra -= 1
            self._shrink()

    def _hand_on(self, child: Child) -> None:
        """The jobs written ahead to a seceded child go back to the front of pending."""
        claims, moved = self._claims.get(child), []
        for pos in range(1, len(child.fifo)):
            job, parts = child.fifo[pos]
            if job.task_id in self._dropped or claims is None \
                    or not claims.drop(child.completed + pos):
                continue
            place = Job(f"{_PLACE}{job.task_id}", None)
            child.fifo[pos] = (place, parts)
            self._dropped.add(place.task_id)
            moved.append((job, parts))
        if moved:
            with self._cond:  # still assigned: the child's SKIPPED answer settles that
                self._pending.extendleft(reversed(moved))

    def _shrink(self) -> None:
        """Back to size after a rejoin: retire an idle process, else the least busy one
        once it has run what it was given."""
        serving = [c for c in self._children if c.accepting]
        for _ in range(len(serving) - self._size()):
            idle = next((c for c in serving if not c.fifo and not c.seceded), None)
            if idle is not None:
                self._detach(idle, retire=True)
                serving.remove(idle)
                continue
            busy = [c for c in serving if not c.seceded]
            if not busy:
                return
            least = min(busy, key=lambda c: len(c.fifo))
            least.accepting = False  # it retires once its jobs ended (_on_ready)
            serving.remove(least)
