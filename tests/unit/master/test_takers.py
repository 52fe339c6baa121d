"""Parked takes are grouped by what their workers can run: work on a queue wakes only the
takes of workers that serve it (``taskq.master.takers``)."""

from __future__ import annotations

import threading
from typing import Any

from taskq.master.state import WorkerInfo
from taskq.master.takers import Takers
from taskq.net import serving


class _Loop:
    """Stands in for the master's loop: records the parked calls run again."""

    def __init__(self) -> None:
        self.reran: list[str] = []

    def rerun(self, pending: Any) -> None:
        self.reran.append(pending.conn)


def _park(takers: Takers, worker: WorkerInfo, loop: _Loop) -> None:
    pending = serving.Pending(loop=loop, conn=worker.worker_id,  # type: ignore[arg-type]
                              run=lambda: None, parkable=True)
    takers.signal(worker).parked[pending.key] = pending


def test_work_on_a_queue_wakes_only_the_takes_that_serve_it() -> None:
    lock = threading.Lock()
    takers, loop = Takers(lock), _Loop()
    a1 = WorkerInfo("a1", "h", 1, 1, ("a",))
    a2 = WorkerInfo("a2", "h", 2, 1, ("a",))
    b = WorkerInfo("b", "h", 3, 1, ("b", "a"))
    gpu = WorkerInfo("gpu", "h", 4, 1, ("a",), resources=(("gpu", 1.0),))
    for worker in (a1, a2, b, gpu):
        _park(takers, worker, loop)
    assert takers.signal(a1) is takers.signal(a2)  # the same queues and resources: a group
    assert takers.signal(a1) is not takers.signal(gpu)

    with lock:  # the broker's: held by every caller
        takers.wake(1, {"b"})
        assert loop.reran == ["b"]
        takers.wake(1, {"a"})  # one per group serving "a": the first of a1/a2, and gpu
        assert sorted(loop.reran[1:]) == ["a1", "gpu"]
        takers.wake_all()
        assert loop.reran[3:] == ["a2"]


def test_a_worker_that_joins_again_has_its_own_take_woken() -> None:
    lock = threading.Lock()
    takers, loop = Takers(lock), _Loop()
    gone = WorkerInfo("w", "h", 1, 1, ("a",))
    pending = serving.Pending(loop=loop, conn="w", run=lambda: None,  # type: ignore[arg-type]
                              parkable=True)
    with lock:
        signal = takers.signal(None)  # parked while the master did not know it
        signal.parked[pending.key] = pending
        signal.keyed["w"] = pending.key
        _park(takers, gone, loop)  # another in its group, not woken
        takers.wake_worker("w")
    assert loop.reran == ["w"]
