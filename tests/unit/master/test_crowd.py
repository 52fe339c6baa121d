"""The crowd of workers: silence checks from a lazy deadline heap, shares per queue."""

from __future__ import annotations

from taskq.master.state.crowd import Crowd, Due
from taskq.master.state.records import WorkerInfo


def worker(worker_id: str, procs: int = 1, queues: tuple[str, ...] = ("default",),
           seen: float = 0.0) -> WorkerInfo:
    info = WorkerInfo(worker_id, "host", 1, procs, queues)
    info.last_seen = seen
    return info


def test_due_returns_keys_whose_time_passed_and_puts_back_the_moved_ones() -> None:
    due = Due()
    times = {"a": 1.0, "b": 2.0, "c": 3.0}
    for key, when in times.items():
        due.add(key, when)
    times["a"] = 5.0  # renewed since: looked at once, then put back for its new time
    assert due.pop(2.5, times.get) == ["b"]
    assert len(due) == 2
    del times["c"]  # gone: dropped when its time comes
    assert due.pop(4.0, times.get) == []
    assert due.pop(5.0, times.get) == []  # not before its time (strictly after)
    assert due.pop(5.5, times.get) == ["a"]
    assert len(due) == 0


def test_due_keeps_one_entry_per_key_and_a_sooner_time_replaces_it() -> None:
    due = Due()
    due.add("a", 1.0)
    due.add("a", 2.0)  # later: the entry at 1.0 stays, and puts the key back for its time
    assert len(due) == 1
    assert due.pop(1.5, lambda _: 2.0) == []
    assert due.pop(2.5, lambda _: 2.0) == ["a"]
    due.add("a", 5.0)
    due.add("a", 3.0)  # sooner (a deadline cut short): looked at then
    assert len(due) == 1
    assert due.pop(3.5, lambda _: 3.0) == ["a"]
    assert due.pop(6.0, lambda _: 3.0) == []  # the stale entry at 5.0 finds nothing
    assert len(due) == 0


def test_overdue_looks_only_at_workers_whose_check_came() -> None:
    crowd = Crowd()
    for i in range(1000):
        crowd.add(worker(f"w{i}", seen=0.0), check_at=5.0 + i)
    looked: list[str] = []

    def silence(info: WorkerInfo) -> float:
        looked.append(info.worker_id)
        return 5.0

    assert crowd.overdue(6.5, silence) == ["w0", "w1"]
    assert looked == ["w0", "w1"]  # not the 998 others
    crowd.workers["w2"].last_seen = 6.0  # heard from: put back for 11.0
    assert crowd.overdue(7.5, silence) == []
    assert sorted(crowd.overdue(11.5, silence)) == ["w2", "w3", "w4", "w5", "w6"]


def test_procs_per_queue_follow_joins_rejoins_and_leaves() -> None:
    crowd = Crowd()
    crowd.add(worker("a", procs=4, queues=("default", "gpu")), check_at=1.0)
    crowd.add(worker("b", procs=2), check_at=1.0)
    assert crowd.procs_by_queue == {"default": 6, "gpu": 4}
    crowd.add(worker("a", procs=1, queues=("gpu",)), check_at=1.0)  # joined again, changed
    assert crowd.procs_by_queue == {"default": 2, "gpu": 1}
    crowd.remove("b")
    crowd.remove("b")  # twice: no harm
    assert crowd.procs_by_queue == {"gpu": 1}


def test_share_counts_only_the_workers_of_the_same_queues() -> None:
    crowd = Crowd()
    busy = [worker("busy1", procs=2, queues=("active",)), worker("busy2", procs=2,
                                                                 queues=("active",))]
    for info in busy:
        crowd.add(info, check_at=1.0)
    for i in range(1000):  # idle on another queue: no part of the active queue's work
        crowd.add(worker(f"idle{i}"), check_at=1.0)
    assert crowd.share(busy[0], {"active": 1000}) == 500
    both = worker("both", procs=1, queues=("active", "default"))
    crowd.add(both, check_at=1.0)
    assert crowd.share(both, {"active": 500, "default": 1001}) == 100 + 1
    assert crowd.share(busy[0], {}) == 0
