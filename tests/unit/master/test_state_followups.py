"""Unit tests of what a task's end sets off in the pure state (``state.followups``): its
callback task, the stop of its children, and dependencies that are allowed to fail."""

from __future__ import annotations

import json
import pickle

from taskq.errors import TaskCancelled
from taskq.master.state import BrokerState, WorkerInfo
from taskq.master.state.followups import CALLBACKS_OUTBOX
from taskq.protocol import bodies, deps
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, TaskState


def make_state() -> BrokerState:
    state = BrokerState(lost_after=10.0, max_lost=3, max_payload=10_000)
    state.register(WorkerInfo("w", "host", 1, 1, ("default",)), 0.0)
    return state


def msg(task_id: str, **options: object) -> TaskMsg:
    deps_ = options.pop("deps", ())
    return TaskMsg(task_id, "box", b"f", b"a", TaskOptions(**options),  # type: ignore[arg-type]
                   deps=deps_)  # type: ignore[arg-type]


def end(state: BrokerState, status: Status, body: bytes | None, now: float = 1.0) -> None:
    got = state.lease("w", 100, now)
    state.complete("w", [ResultMsg(m.task_id, status, body, detail="why") for m in got], now)


def test_a_failed_task_makes_its_on_failure_task_once_with_its_raw_outcome() -> None:
    state = make_state()
    state.submit([msg("box-1", on_failure=b"handler", retries=1)], 0.0)
    error = bodies.encode_error(ValueError("bad"))
    end(state, Status.ERROR, error)  # retried: no callback yet
    assert "box-1:on_failure" not in state.tasks
    end(state, Status.ERROR, error, now=2.0)
    callback = state.tasks["box-1:on_failure"].msg
    assert callback.fn == b"handler" and callback.outbox == CALLBACKS_OUTBOX
    assert any(r.msg.task_id == "box-1:on_failure" for r in state.changes.added)
    args, _kwargs = bodies.decode_args(callback.args)
    assert args[0] == "box-1" and isinstance(args[1], ValueError) and str(args[1]) == "bad"
    # the same task's end again (a resent report) makes no second callback
    state.submit([callback], 3.0)
    assert sum(t.startswith("box-1:") for t in state.tasks) == 1


def test_on_success_gets_the_value_and_a_cancelled_task_calls_nothing() -> None:
    state = make_state()
    state.submit([msg("box-1", on_success=b"ok-handler", on_failure=b"bad-handler")], 0.0)
    end(state, Status.OK, pickle.dumps(42))
    callback = state.tasks["box-1:on_success"].msg
    assert callback.fn == b"ok-handler"
    assert bodies.decode_args(callback.args) == (("box-1", 42), {})
    state.submit([msg("box-2", on_failure=b"bad-handler")], 2.0)
    state.cancel(["box-2"])
    assert "box-2:on_failure" not in state.tasks


def test_a_callback_is_held_from_leases_until_the_journal_has_it() -> None:
    state = make_state()
    state.hold_ticks = True
    state.submit([msg("box-1", on_failure=b"h")], 0.0)
    end(state, Status.CRASHED, None)
    assert state.unjournaled == {"box-1:on_failure"}
    assert state.lease("w", 10, 2.0) == []
    state.ticks_journaled(["box-1:on_failure"])
    assert [m.task_id for m in state.lease("w", 10, 3.0)] == ["box-1:on_failure"]


def test_a_stopped_parent_stops_its_children_and_theirs() -> None:
    state = make_state()
    state.submit([msg("box-p")], 0.0)
    assert [m.task_id for m in state.lease("w", 1, 0.5)] == ["box-p"]
    state.start("w", ["box-p"], 0.5)
    state.submit([msg("box-c1", parent="box-p"), msg("box-c2", parent="box-p"),
                  msg("box-g", parent="box-c2"), msg("box-other")], 1.0)
    assert state.children.of == {"box-p": {"box-c1", "box-c2"}, "box-c2": {"box-g"}}
    state.stop(["box-p"], 2.0)
    state.complete("w", [ResultMsg("box-p", Status.CANCELLED, detail="stopped")], 2.0)
    results = state.outboxes["box"].results
    assert {t for t, r in results.items() if r.status is Status.CANCELLED} == \
        {"box-p", "box-c1", "box-c2", "box-g"}
    assert "box-other" in state.tasks and state.children.of == {}


def test_a_child_that_ended_leaves_its_parent_and_the_parent_ending_ok_stops_nothing() -> None:
    state = make_state()
    state.submit([msg("box-c", parent="box-p"), msg("box-d", parent="box-p")], 0.0)
    got = state.lease("w", 1, 0.5)
    state.complete("w", [ResultMsg(got[0].task_id, Status.OK, b"v")], 0.5)
    assert state.children.of == {"box-p": {"box-d"}}


def test_an_allowed_failure_is_handed_to_the_dependent_and_a_strict_one_fails_it() -> None:
    state = make_state()
    state.submit([msg("box-1"), msg("box-2", deps=("box-1",), allow_failed=("box-1",)),
                  msg("box-3", deps=("box-1",))], 0.0)
    end(state, Status.ERROR, bodies.encode_error(KeyError("k")))
    results = state.outboxes["box"].results
    assert results["box-3"].status is Status.DEPENDENCY_FAILED
    assert state.tasks["box-2"].state is TaskState.PENDING
    (leased,) = state.lease("w", 10, 2.0)
    ((key, _body),) = leased.inputs
    assert key == deps.ALLOWED_MARK + "box-1"
    with deps.decoding(leased.inputs, bodies.allowed_failure):
        value = deps._dependency("box-1")
    assert isinstance(value, KeyError)
    # a task submitted later that does not allow it fails at once, one that does runs
    state.submit([msg("box-4", deps=("box-1",)),
                  msg("box-5", deps=("box-1",), allow_failed=("box-1",))], 3.0)
    assert results["box-4"].status is Status.DEPENDENCY_FAILED
    assert state.tasks["box-5"].state is TaskState.PENDING


def test_an_allowed_cancelled_dependency_is_a_task_cancelled() -> None:
    state = make_state()
    state.submit([msg("box-1"), msg("box-2", deps=("box-1",), allow_failed=("box-1",))], 0.0)
    state.cancel(["box-1"])
    (leased,) = state.lease("w", 10, 1.0)
    with deps.decoding(leased.inputs, bodies.allowed_failure):
        assert isinstance(deps._dependency("box-1"), TaskCancelled)


def test_the_new_options_survive_the_journal_encoding() -> None:
    options = TaskOptions(on_failure=b"\x00fail", on_success=b"ok\xff", parent="box-p",
                          allow_failed=("box-1", "box-2"), retries=2)
    extra = json.loads(json.dumps(options.extra()))
    assert TaskOptions.with_extra(None, 2, 0, "default", extra) == options
    assert TaskOptions().extra() == {}


def test_a_task_with_a_callback_is_not_forgotten_when_its_submitter_has_its_result() -> None:
    state = make_state()
    state.submit([msg("box-1", on_failure=b"h"), msg("box-2", parent="box-p")], 0.0)
    state.forget_ended("box", ["box-1", "box-2"])  # (a master restarted before journaling)
    assert "box-1" in state.tasks and "box-2" not in state.tasks
    assert state.children.of == {}
    end(state, Status.ERROR, bodies.encode_error(ValueError("x")))  # its worker re-sends
    assert "box-1:on_failure" in state.tasks
