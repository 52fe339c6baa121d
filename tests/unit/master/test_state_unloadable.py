"""A task one worker cannot load goes to another: the broker's state, explain and journal.

A worker reports UNLOADABLE when its pool cannot import the task's module. The task goes
back in its place in line, no retry used, never to that worker again; it fails only when
every connected worker of its queue (or MAX_LOAD_REFUSALS of them) could not load it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from state_helpers import fetch_all, ids, join, make_state, ok, task

from taskq.defaults import MAX_LOAD_REFUSALS
from taskq.errors import TaskLoadError
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.master.state.explain import explain
from taskq.protocol import bodies
from taskq.protocol.messages import ResultMsg, Status, TaskState

WHY = "could not import mytasks: No module named 'mytasks'"


def unloadable(task_id: str) -> ResultMsg:
    return ResultMsg(task_id, Status.UNLOADABLE, b"", f"{WHY}\nTraceback (...)")


def two_workers(n: int = 3) -> BrokerState:
    state = make_state()
    join(state, "able")
    join(state, "unable")
    state.submit([task(f"t{i}") for i in range(n)], 0.0)
    return state


def test_a_task_one_worker_cannot_load_goes_to_another_in_its_place() -> None:
    state = two_workers()
    assert ids(state.lease("unable", 1, 1.0)) == ["t0"]

    state.complete("unable", [unloadable("t0")], 2.0)

    rec = state.tasks["t0"]
    assert rec.state is TaskState.PENDING
    assert (rec.errors, rec.lost) == (0, 0)  # no retry used, no attempt of the function
    assert rec.refused_by == {"unable": f"worker unable {WHY}"}
    assert state.workers["unable"].failed == 0
    # the worker that could not load it is handed the next task instead, and only that
    assert ids(state.lease("unable", 5, 3.0)) == ["t1", "t2"]
    assert not state.can_lease(("default",), 3.0, "unable")
    assert state.can_lease(("default",), 3.0, "able")
    # t0 kept its place in line: first for a worker that can load it
    msgs = state.lease("able", 5, 4.0)
    assert ids(msgs) == ["t0"] and msgs[0].attempt == 0
    state.complete("able", [ok("t0")], 5.0)
    assert fetch_all(state)["t0"].status is Status.OK
    attempts = state.history.tasks["t0"].attempts
    assert [(a.worker, a.outcome) for a in attempts] == [("unable", "unloadable"),
                                                         ("able", "ok")]
    assert attempts[0].detail == f"worker unable {WHY}"


def test_a_lease_skips_only_tasks_its_worker_could_not_load() -> None:
    state = two_workers()
    for tid in ("t0", "t1"):
        state.lease("unable", 1, 1.0)
        state.complete("unable", [unloadable(tid)], 1.0)
    # t0 and t1 wait ahead of t2; the unable worker still gets t2, and only t2
    assert ids(state.lease("unable", 5, 2.0)) == ["t2"]
    assert state.lease("unable", 5, 2.0) == []
    assert ids(state.lease("able", 5, 2.0)) == ["t0", "t1"]


def test_a_task_no_connected_worker_can_load_fails_naming_each() -> None:
    state = two_workers(1)
    state.lease("unable", 1, 1.0)
    state.complete("unable", [unloadable("t0")], 1.0)
    state.lease("able", 1, 2.0)

    state.complete("able", [ResultMsg("t0", Status.UNLOADABLE, b"",
                                      "could not import numpy: No module named 'numpy'")], 3.0)

    result = fetch_all(state)["t0"]
    assert "t0" not in state.tasks and result.status is Status.UNLOADABLE
    assert result.detail == (
        "no worker serving queue 'default' could load the task (2 workers tried: unable, "
        f"able): worker unable {WHY}; worker able could not import numpy: No module named "
        "'numpy'")
    with pytest.raises(TaskLoadError, match="No module named 'mytasks'"):
        bodies.decode_result(result)
    history = state.history.tasks["t0"]
    assert history.outcome == "unloadable" and len(history.attempts) == 2
    ended = explain(state, "t0", 4.0)
    assert ended.reasons[1] == result.detail


def test_with_only_workers_that_cannot_load_it_a_task_fails_at_once() -> None:
    state = make_state()
    join(state, "unable")
    join(state, "elsewhere", queues=("other",))  # serves another queue: not asked
    state.submit([task("t0")], 0.0)
    state.lease("unable", 1, 1.0)

    state.complete("unable", [unloadable("t0")], 1.0)

    result = fetch_all(state)["t0"]
    assert result.status is Status.UNLOADABLE
    assert "(1 worker tried: unable)" in result.detail and WHY in result.detail


def test_a_task_fails_after_max_load_refusals_even_with_workers_left() -> None:
    state = make_state()
    workers = [f"w{i}" for i in range(MAX_LOAD_REFUSALS + 2)]
    for worker in workers:
        join(state, worker)
    state.submit([task("t0")], 0.0)
    for worker in workers[:MAX_LOAD_REFUSALS]:
        assert ids(state.lease(worker, 1, 1.0)) == ["t0"]
        state.complete(worker, [unloadable("t0")], 1.0)
    result = fetch_all(state)["t0"]
    assert result.status is Status.UNLOADABLE
    assert f"({MAX_LOAD_REFUSALS} workers tried: " in result.detail


def test_a_refusal_from_a_worker_that_no_longer_holds_the_task_is_only_noted() -> None:
    """Re-sent after a master restart, or from a worker lost meanwhile: the task stays
    where it is (it never runs twice), but is not handed to that worker again."""
    state = two_workers(1)
    state.lease("able", 1, 1.0)
    state.complete("unable", [unloadable("t0")], 2.0)
    rec = state.tasks["t0"]
    assert (rec.state, rec.worker) == (TaskState.LEASED, "able")
    assert rec.refused_by is not None and "unable" in rec.refused_by
    state.release("able", ["t0"])  # queued again: not for the worker that could not load it
    assert state.lease("unable", 1, 3.0) == []


def test_explain_says_who_could_not_load_a_queued_task() -> None:
    state = two_workers(1)
    state.lease("unable", 1, 1.0)
    state.complete("unable", [unloadable("t0")], 1.0)
    reasons = explain(state, "t0", 2.0).reasons
    assert reasons[-1] == (f"1 worker could not load it, and is not handed it again: "
                           f"worker unable {WHY}")
    state.forget_worker("able")  # only a worker that could not load it is left
    out = explain(state, "t0", 2.0)
    assert out.summary.startswith("every worker serving 'default' now could not load it")
    assert out.facts["could_not_load"] == {"unable": f"worker unable {WHY}"}


def test_the_workers_that_could_not_load_a_task_survive_a_restart(tmp_path: Path) -> None:
    state = two_workers()
    journal = Journal(tmp_path / "j.db")
    try:
        journal.write(state.drain_changes())
        state.lease("unable", 1, 1.0)
        state.complete("unable", [unloadable("t0")], 1.0)
        journal.write(state.drain_changes())
    finally:
        journal.close()

    again = make_state()
    journal = Journal(tmp_path / "j.db")
    try:
        journal.load(again)
    finally:
        journal.close()
    rec = again.tasks["t0"]
    assert rec.refused_by == {"unable": f"worker unable {WHY}"}
    assert again.tasks["t1"].refused_by is None
    again.open_claims(0.0)
    again.promote(1.0)
    join(again, "able", 1.0)
    join(again, "unable", 1.0)
    assert ids(again.lease("unable", 5, 1.0)) == ["t1", "t2"]
    assert ids(again.lease("able", 5, 1.0)) == ["t0"]
