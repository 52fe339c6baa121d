"""Unit tests of an operator's controls in the broker state: pause, resume and purge a
queue, drain a worker (``taskq.master.state.controls``)."""

from __future__ import annotations

from pathlib import Path

from state_helpers import fetch_all, ids, join, make_state, ok, task

from taskq.master.state import WorkerInfo
from taskq.master.state.limits import QueueLimit
from taskq.master.state.views import metrics_copy
from taskq.protocol.messages import Status, TaskMsg, TaskOptions, TaskState


def test_a_paused_queue_accepts_tasks_but_leases_none_and_other_queues_run() -> None:
    state = make_state()
    join(state, "w", queues=("a", "b"))
    state.submit([task("a1", queue="a")], now=0)
    assert state.pause_queue("a", True)
    assert state.submit([task("a2", queue="a"), task("b1", queue="b")], now=1) == 2
    assert not state.can_lease(("a",), now=1)
    assert ids(state.lease("w", 10, now=1)) == ["b1"]
    assert state.pending_by_queue["a"] == 2
    assert state.pause_queue("a", False)
    assert ids(state.lease("w", 10, now=2)) == ["a1", "a2"]


def test_pausing_twice_changes_nothing_and_each_change_is_journaled_once() -> None:
    state = make_state()
    state.submit([task("a1", queue="a")], now=0)
    state.drain_changes()
    assert state.pause_queue("a", True) is True
    assert state.pause_queue("a", True) is False
    assert state.drain_changes().paused == [("a", True)]
    assert state.pause_queue("a", False)
    assert not state.pause_queue("a", False)
    assert state.drain_changes().paused == [("a", False)]


def test_a_queue_is_known_by_its_tasks_workers_limits_or_pause() -> None:
    state = make_state()
    assert not state.known_queue("q")
    assert state.pause_queue("q", True) is None and state.purge_queue("q", now=0) is None
    assert not state.limits.paused
    state.limits.set("lim", QueueLimit(concurrency=1))
    join(state, "w", queues=("served",))
    delayed = TaskMsg("d", "box", b"f", b"a", TaskOptions(queue="later", run_at=10**12))
    state.submit([delayed], now=0)
    assert state.queues.waiting_count == 1
    for queue in ("lim", "served", "later"):
        assert state.known_queue(queue), queue
    state.restore_pauses(["old"])
    assert state.known_queue("old")


def test_a_paused_queue_wants_no_workers_and_its_tasks_say_why() -> None:
    from taskq.master.state.explain import explain

    state = make_state()
    join(state, "w", queues=("a",))
    state.submit([task("a1", queue="a")], now=0)
    assert metrics_copy(state)["desired"]["a"] == 1
    state.pause_queue("a", True)
    assert metrics_copy(state)["desired"]["a"] == 0
    why = explain(state, "a1", now=0)
    assert "paused" in why.summary and why.facts["paused"] is True


def test_a_pause_holds_across_a_restart() -> None:
    state = make_state()
    state.restore_pauses(["a"])
    state.submit([task("a1", queue="a")], now=0)
    join(state, "w", queues=("a",))
    assert state.lease("w", 10, now=0) == []


def test_purge_cancels_only_what_no_worker_holds() -> None:
    state = make_state()
    join(state, "w", queues=("a",))
    state.submit([task(f"a{i}", queue="a") for i in range(4)] + [task("b1", queue="b")],
                 now=0)
    assert ids(state.lease("w", 2, now=0)) == ["a0", "a1"]
    state.start("w", ["a0"], now=0)
    delayed = TaskMsg("a-later", "box", b"f", b"a", TaskOptions(queue="a", run_at=10**12))
    state.submit([delayed], now=0)
    assert sorted(state.purge_queue("a", now=1)) == ["a-later", "a2", "a3"]
    results = fetch_all(state)
    assert {t: r.status for t, r in results.items()} == {
        "a-later": Status.CANCELLED, "a2": Status.CANCELLED, "a3": Status.CANCELLED}
    assert "purged" in results["a2"].detail
    assert state.tasks["a0"].state is TaskState.LEASED  # running: left alone
    assert state.tasks["a1"].state is TaskState.LEASED  # leased, not begun: left alone
    assert state.tasks["b1"].state is TaskState.PENDING  # another queue
    assert state.pending_by_queue["a"] == 0 and state.queues.waiting_count == 0
    state.complete("w", [ok("a0"), ok("a1")], now=2)
    assert state.purge_queue("a", now=3) == []


def test_purging_a_paused_queue_keeps_it_paused() -> None:
    state = make_state()
    state.submit([task("a1", queue="a")], now=0)
    state.pause_queue("a", True)
    assert state.purge_queue("a", now=0) == ["a1"]
    assert "a" in state.limits.paused and state.known_queue("a")


def test_a_drained_worker_is_leased_nothing_and_told_on_its_beats() -> None:
    state = make_state()
    join(state, "w")
    join(state, "v")
    state.submit([task(f"t{i}") for i in range(4)], now=0)
    assert ids(state.lease("w", 1, now=0)) == ["t0"]
    assert not state.drain_told("w")
    assert state.drain_worker("w")
    assert not state.drain_worker("nobody")
    assert state.drain_told("w") and not state.drain_told("v")
    assert state.lease("w", 10, now=1) == []
    assert ids(state.lease("v", 10, now=1)) == ["t1", "t2", "t3"]
    assert state.workers["w"].held == {"t0"}  # what it runs is its own to finish


def test_a_worker_that_rejoins_keeps_draining() -> None:
    state = make_state()
    join(state, "w")
    state.drain_worker("w")
    join(state, "w", now=1)  # it had not heard yet: it is still asked
    assert state.workers["w"].draining and state.drain_told("w")
    fresh = make_state()  # a restarted master: the worker says it drains
    fresh.register(WorkerInfo("w", "host", 1, 1, ("default",), draining=True), 0)
    fresh.submit([task("t1")], now=0)
    assert fresh.workers["w"].draining and fresh.lease("w", 10, now=0) == []
    assert metrics_copy(fresh)["workers"]["draining"] == 1


def test_the_journal_keeps_the_paused_queues_in_order(tmp_path: Path) -> None:
    from taskq.master.journal import Journal, merge

    state = make_state()
    state.submit([task("a1", queue="a"), task("b1", queue="b"), task("c1", queue="c")], now=0)
    journal = Journal(tmp_path / "journal.db")
    state.pause_queue("a", True)
    state.pause_queue("b", True)
    first = state.drain_changes()
    state.pause_queue("b", False)
    state.pause_queue("c", True)
    state.pause_queue("c", False)
    state.pause_queue("c", True)
    journal.write(merge([first, state.drain_changes()]))
    journal.close()
    fresh = make_state()
    Journal(tmp_path / "journal.db").load(fresh)
    assert fresh.limits.paused == {"a", "c"}
    join(fresh, "w", queues=("a", "b", "c"))
    fresh.promote(10)
    assert ids(fresh.lease("w", 10, now=10)) == ["b1"]


def test_metrics_say_which_queues_are_paused() -> None:
    from taskq.master.metrics import MasterCollector

    state = make_state()
    state.submit([task("a1", queue="a")], now=0)
    state.pause_queue("a", True)
    snap = {**metrics_copy(state), "commit": None}
    families = {f.name: f for f in MasterCollector(_Snap(snap)).collect()}
    assert [(s.labels, s.value) for s in families["taskq_queue_paused"].samples] == [
        ({"queue": "a"}, 1.0), ({"queue": "default"}, 0.0)]


class _Snap:
    def __init__(self, snap: dict[str, object]) -> None:
        self.snap = snap

    def metrics(self) -> dict[str, object]:
        return self.snap


def test_purge_spares_a_restored_task_its_holder_may_still_run() -> None:
    state = make_state()
    state.restore_hold_until = 5.0  # a restarted master: holders have until 5 to claim back
    state.restore_task(task("held"), seq=1, lost=0, errors=0, holder="w")
    state.restore_task(task("free"), seq=2, lost=0, errors=0)
    assert state.purge_queue("default", now=1) == ["free"]
    assert state.tasks["held"].state is TaskState.WAITING
    assert state.purge_queue("default", now=6) == ["held"]  # nobody claimed it
