"""Unit tests of task dependencies in the broker's pure state (``taskq.master.state.deps``)."""

from __future__ import annotations

import pytest

from taskq.errors import DependencyFailed, TaskCancelled
from taskq.master.journal import merge
from taskq.master.state import BrokerState, Changes, WorkerInfo
from taskq.protocol import deps
from taskq.protocol.bodies import decode_result, encode_error
from taskq.protocol.messages import MIRROR_FN, ResultMsg, Status, TaskMsg, TaskOptions, TaskState


def make_state(limit: int = 1000) -> BrokerState:
    state = BrokerState(lost_after=10.0, max_lost=3, max_payload=1000)
    state.deps.limit = limit
    state.register(WorkerInfo("w", "host", 1, 1, ("default",)), 0.0)
    return state


def task(n: int, *deps: int, box: str = "box", run_at: float = 0.0, fn: bytes = b"f") -> TaskMsg:
    return TaskMsg(f"{box}-{n}", box, fn, b"a", TaskOptions(run_at=run_at),
                   deps=tuple(f"box-{d}" for d in deps))


def result_of(state: BrokerState, n: int, box: str = "box") -> ResultMsg | None:
    outbox = state.outboxes.get(box)
    return None if outbox is None else outbox.results.get(f"{box}-{n}")


def run(state: BrokerState, status: Status = Status.OK, body: bytes = b"v",
        now: float = 1.0) -> list[str]:
    """Lease everything queued and end it with ``status``; returns the ids run."""
    got = state.lease("w", 100, now)
    state.complete("w", [ResultMsg(m.task_id, status, body) for m in got], now)
    return [m.task_id for m in got]


def test_a_dependent_waits_then_gets_the_result_with_its_lease() -> None:
    state = make_state()
    state.submit([task(1), task(2, 1)], 0.0)
    assert state.tasks["box-2"].state is TaskState.BLOCKED
    assert state.deps.blockers("box-2") == ["box-1"]
    assert state.deps.dependents("box-1") == ["box-2"]
    assert state.pending_count() == 1
    assert run(state) == ["box-1"]
    assert state.deps.blockers("box-2") == []
    got = state.lease("w", 10, 2.0)
    assert [(m.task_id, m.inputs) for m in got] == [("box-2", (("box-1", b"v"),))]
    assert state.tasks["box-2"].msg.inputs == ()  # attached to the lease, not kept twice


def test_a_kept_result_outlives_the_ack_and_goes_with_the_last_dependent() -> None:
    state = make_state()
    state.submit([task(1), task(2, 1), task(3, 1)], 0.0)
    run(state)
    state.fetch("box", ["box-1"], 10)  # the submitter acknowledged it
    assert result_of(state, 1) is None and state.deps.kept["box-1"].refs == 2
    got = state.lease("w", 10, 2.0)
    assert all(m.inputs == (("box-1", b"v"),) for m in got)
    state.complete("w", [ResultMsg("box-2", Status.OK, b"x")], 2.0)
    assert state.deps.kept["box-1"].refs == 1
    state.complete("w", [ResultMsg("box-3", Status.OK, b"x")], 2.0)
    assert "box-1" not in state.deps.kept
    changes = state.drain_changes()
    assert changes.kept == {"box-1": None}  # kept and dropped: its latest word


def test_a_failed_dependency_fails_its_dependents_transitively_without_running_them() -> None:
    state = make_state()
    state.submit([task(1), task(2, 1), task(3, 2), task(4)], 0.0)
    error = encode_error(ValueError("boom"))
    got = state.lease("w", 10, 1.0)
    assert {m.task_id for m in got} == {"box-1", "box-4"}
    state.complete("w", [ResultMsg("box-1", Status.ERROR, error)], 1.0)
    assert not state.tasks.keys() & {"box-2", "box-3"}
    two, three = result_of(state, 2), result_of(state, 3)
    assert two is not None and two.status is Status.DEPENDENCY_FAILED
    assert three is not None and "box-2" in three.detail
    with pytest.raises(DependencyFailed) as info:
        decode_result(three)
    assert info.value.dependency == "box-2"
    inner = info.value.__cause__
    assert isinstance(inner, DependencyFailed) and inner.dependency == "box-1"
    assert isinstance(inner.__cause__, ValueError)
    assert state.lease("w", 10, 2.0) == []
    assert state.history.tasks["box-3"].outcome == "dependency_failed"


def test_a_cancelled_dependency_fails_dependents_with_task_cancelled_as_cause() -> None:
    state = make_state()
    state.submit([task(1), task(2, 1)], 0.0)
    assert state.cancel(["box-1"]).cancelled == ["box-1"]
    two = result_of(state, 2)
    assert two is not None
    with pytest.raises(DependencyFailed) as info:
        decode_result(two)
    assert isinstance(info.value.__cause__, TaskCancelled)


def test_a_cancelled_dependent_releases_what_it_held() -> None:
    state = make_state()
    state.submit([task(1), task(2), task(3, 1, 2)], 0.0)
    state.lease("w", 1, 1.0)
    state.complete("w", [ResultMsg("box-1", Status.OK, b"v")], 1.0)
    assert state.deps.kept["box-1"].refs == 1 and state.deps.missing == {"box-3": 1}
    state.cancel(["box-3"])
    assert not state.deps.kept and not state.deps.missing
    assert run(state) == ["box-2"]  # its other dependency still runs, and nothing waits


def test_unknown_and_fetched_dependencies_fail_the_task_at_once() -> None:
    state = make_state()
    state.submit([task(1)], 0.0)
    run(state)
    state.fetch("box", ["box-1"], 10)
    state.submit([task(2, 1), task(3, 99)], 2.0)
    for n in (2, 3):
        result = result_of(state, n)
        assert result is not None and result.status is Status.DEPENDENCY_FAILED
        assert "knows no task" in result.detail


def test_an_ended_dependency_whose_result_waits_is_kept_for_a_new_dependent() -> None:
    state = make_state()
    state.submit([task(1)], 0.0)
    run(state)
    state.submit([task(2, 1)], 2.0)
    assert state.tasks["box-2"].state is TaskState.PENDING
    assert state.deps.kept["box-1"].refs == 1
    state.fetch("box", ["box-1"], 10)
    assert state.lease("w", 10, 3.0)[0].inputs == (("box-1", b"v"),)


def test_an_unblocked_task_still_waits_for_its_time() -> None:
    state = make_state()
    state.wall_offset = 0.0
    state.submit([task(1), task(2, 1, run_at=50.0)], 0.0)
    run(state)
    assert state.tasks["box-2"].state is TaskState.WAITING
    assert state.promote(49.0) == 0 and state.promote(50.0) == 1


def test_too_many_blocked_tasks_are_refused() -> None:
    state = make_state(limit=1)
    state.submit([task(1), task(2, 1), task(3, 1)], 0.0)
    three = result_of(state, 3)
    assert three is not None and three.status is Status.REFUSED
    assert "--max-pending is 1" in three.detail
    assert state.tasks["box-2"].state is TaskState.BLOCKED


def test_a_mirror_ends_with_a_copy_of_its_dependency() -> None:
    state = make_state()
    state.submit([task(1, box="other")], 0.0)
    mirror = TaskMsg("box-7", "box", MIRROR_FN, b"", deps=("other-1",))
    state.submit([mirror], 0.0)
    assert state.tasks["box-7"].state is TaskState.BLOCKED
    assert run(state) == ["other-1"]  # the mirror itself is never leased
    copy = result_of(state, 7)
    assert copy is not None and (copy.status, copy.body) == (Status.OK, b"v")


def test_a_blocked_task_is_not_taken_by_a_heartbeat_or_completed_by_a_report() -> None:
    state = make_state()
    state.submit([task(1), task(2, 1)], 0.0)
    state.heartbeat("w", ["box-2"], 1, 1.0)
    state.complete("w", [ResultMsg("box-2", Status.OK, b"x")], 1.0)
    assert state.tasks["box-2"].state is TaskState.BLOCKED


def test_a_restored_graph_waits_as_before() -> None:
    state = make_state()
    state.submit([task(1), task(2), task(3, 1, 2)], 0.0)
    state.lease("w", 1, 1.0)
    state.complete("w", [ResultMsg("box-1", Status.OK, b"v")], 1.0)
    again = make_state()
    for kept in state.deps.kept.values():
        again.deps.restore_kept(kept.result)
    for rec in sorted(state.tasks.values(), key=lambda r: r.seq):
        again.restore_task(rec.msg, rec.seq, rec.lost, rec.errors)
    again.deps.forget_unreferenced()
    assert again.tasks["box-3"].state is TaskState.BLOCKED
    assert again.deps.blockers("box-3") == ["box-2"]
    assert again.deps.kept["box-1"].refs == 1
    assert run(again, now=2.0) == ["box-2"]
    assert run(again, now=3.0) == ["box-3"]
    assert not again.deps.kept


def test_journal_merge_keeps_the_latest_word_on_a_kept_result() -> None:
    first, second = Changes(), Changes()
    first.kept = {"a": ResultMsg("a", Status.OK, b"1")}
    second.kept = {"a": None, "b": ResultMsg("b", Status.OK, b"2")}
    second.deps_gone = ["x"]
    out = merge([first, second])
    assert out.kept == {"a": None, "b": second.kept["b"]} and out.deps_gone == ["x"]


def test_a_future_pickles_only_as_an_argument() -> None:
    class Fake:
        task_id = "box-1"

    with pytest.raises(TypeError, match="only as an argument"):
        deps.reduce_future(Fake())


def test_a_task_failed_at_submit_takes_nothing_from_the_kept_results() -> None:
    state = make_state()
    state.submit([task(1)], 0.0)
    run(state)
    state.submit([task(2, 1)], 2.0)  # holds box-1's result
    state.submit([task(3, 1, 99), task(4, 1)], 2.0)  # box-3 fails at once: box-99 unknown
    three = result_of(state, 3)
    assert three is not None and three.status is Status.DEPENDENCY_FAILED
    assert state.deps.kept["box-1"].refs == 2
    got = state.lease("w", 10, 3.0)
    assert {m.task_id: m.inputs for m in got} == {"box-2": (("box-1", b"v"),),
                                                  "box-4": (("box-1", b"v"),)}
