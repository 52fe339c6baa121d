"""Unit tests of task expiry in the broker's pure state (``taskq.master.state.expiry``): a
deadline set at submit on the master's clock, never leased past it, ended by the reaper's
pass wherever the task waits, left to its worker while leased, kept across a restore."""

from __future__ import annotations

from pathlib import Path

from state_helpers import fetch_all, join, make_state, ok

from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, TaskState


def expiring(task_id: str = "a", expires: float = 5.0, **options: object) -> TaskMsg:
    return TaskMsg(task_id, "box", b"f", b"a", TaskOptions(expires=expires, **options))  # type: ignore[arg-type]


def ended(state: BrokerState, task_id: str = "a") -> ResultMsg:
    return fetch_all(state)[task_id]


def test_the_deadline_is_the_masters_wall_clock_at_submit_plus_expires() -> None:
    state = make_state()
    state.wall_offset = 1000.0
    shared = TaskOptions(expires=5.0)
    msgs = [TaskMsg(t, "box", b"f", b"a", shared) for t in ("a", "b")]
    state.submit(msgs, now=10.0)
    assert [state.tasks[t].msg.options.expires_at for t in ("a", "b")] == [1015.0, 1015.0]
    assert shared.expires_at == 0.0  # the submitter's options are not changed
    assert state.expiry_deadline(state.tasks["a"]) == 15.0  # on the state's clock
    state.submit([TaskMsg("c", "box", b"f", b"a", TaskOptions())], now=10.0)
    assert state.expiry_deadline(state.tasks["c"]) is None


def test_a_queued_task_expires_at_its_deadline_without_a_worker() -> None:
    state = make_state()
    state.submit([expiring(expires=5.0)], now=0.0)
    state.expire(4.9)
    assert state.tasks["a"].state is TaskState.PENDING
    state.expire(5.01)
    assert "a" not in state.tasks and state.pending_count() == 0
    result = ended(state)
    assert result.status is Status.EXPIRED and "expires=5 s" in result.detail
    assert state.finished_failed == 1
    assert state.history.stats.counters[("finished", "default", "expired")] == 1  # /metrics
    assert state.history.tasks["a"].outcome == "expired"  # taskq history, inspect


def test_a_task_past_its_deadline_is_never_leased() -> None:
    state = make_state()
    state.submit([expiring("a", 1.0), expiring("b", 100.0)], now=0.0)
    join(state, "w", now=0.0)
    leased = state.lease("w", 2, now=2.0)  # before any reaper pass
    assert [m.task_id for m in leased] == ["b"]
    assert ended(state).status is Status.EXPIRED
    assert state.pending_count() == 0 and state.queues.pending_count() == 0


def test_a_delayed_or_blocked_task_expires_while_it_waits() -> None:
    state = make_state()
    state.submit([expiring("late", 2.0, run_at=50.0)], now=0.0)
    state.submit([TaskMsg("dep", "box", b"f", b"a"),
                  TaskMsg("child", "box", b"f", b"a", TaskOptions(expires=3.0),
                          deps=("dep",))], now=0.0)
    assert state.tasks["late"].state is TaskState.WAITING
    assert state.tasks["child"].state is TaskState.BLOCKED
    state.expire(3.01)
    results = fetch_all(state)
    assert results["late"].status is Status.EXPIRED
    assert results["child"].status is Status.EXPIRED
    assert "dep" in state.tasks  # the dependency itself has no deadline


def test_a_leased_task_is_its_workers_to_expire_and_its_result_counts() -> None:
    state = make_state()
    state.submit([expiring(expires=2.0)], now=0.0)
    join(state, "w", now=0.0)
    (msg,) = state.lease("w", 1, now=1.0)
    assert msg.options.expires_at == 2.0  # the worker is handed the deadline
    state.heartbeat("w", ["a"], 0, now=3.0)
    state.expire(3.0)
    assert state.tasks["a"].state is TaskState.LEASED  # its worker decides
    state.complete("w", [ResultMsg("a", Status.EXPIRED, detail="not started", retry=False)],
                   now=3.1)
    assert ended(state).status is Status.EXPIRED


def test_a_task_that_started_in_time_runs_to_its_end() -> None:
    state = make_state()
    state.submit([expiring(expires=2.0)], now=0.0)
    join(state, "w", now=0.0)
    state.lease("w", 1, now=1.0)
    state.start("w", ["a"], now=1.5)
    state.heartbeat("w", ["a"], 1, now=9.0)
    state.expire(9.0)
    state.complete("w", [ok("a")], now=9.5)
    assert ended(state).status is Status.OK


def test_a_lease_lost_after_the_deadline_expires_rather_than_running_again() -> None:
    state = make_state()
    state.submit([expiring(expires=2.0)], now=0.0)
    join(state, "w", now=0.0)
    state.lease("w", 1, now=1.0)
    state.expire(30.0)  # the worker went silent; its lease went back to the queue
    assert ended(state).status is Status.EXPIRED


def test_a_retry_after_the_deadline_expires() -> None:
    state = make_state()
    state.submit([expiring(expires=5.0, retries=3, backoff=10.0, jitter=False)], now=0.0)
    join(state, "w", now=0.0)
    state.lease("w", 1, now=1.0)
    state.complete("w", [ResultMsg("a", Status.ERROR, b"e")], now=2.0)
    assert state.tasks["a"].state is TaskState.WAITING  # its backoff runs to 12
    state.expire(5.01)
    result = ended(state)
    assert result.status is Status.EXPIRED and "after 1 attempt" in result.detail


def test_a_retry_within_the_deadline_runs() -> None:
    state = make_state()
    state.submit([expiring(expires=5.0, retries=1)], now=0.0)
    join(state, "w", now=0.0)
    state.lease("w", 1, now=1.0)
    state.complete("w", [ResultMsg("a", Status.ERROR, b"e")], now=2.0)
    assert [m.task_id for m in state.lease("w", 1, now=3.0)] == ["a"]


def test_the_deadline_is_journaled_and_a_restored_task_past_it_expires(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    state = make_state()
    state.wall_offset = 500.0
    state.submit([expiring("a", 5.0), expiring("b", 100.0, soft_timeout=2.5, timeout=9.0)],
                 now=0.0)
    journal = Journal(path)
    journal.write(state.drain_changes())
    journal.close()
    restored = make_state()
    restored.wall_offset = 600.0  # a new run: its clock started 100 s later
    journal = Journal(path)
    try:
        journal.load(restored)
    finally:
        journal.close()
    assert restored.tasks["a"].msg.options.expires_at == 505.0
    options = restored.tasks["b"].msg.options
    assert (options.expires, options.soft_timeout, options.timeout) == (100.0, 2.5, 9.0)
    restored.expire(0.0)  # 505 - 600: long past
    assert ended(restored).status is Status.EXPIRED
    assert restored.tasks["b"].state is TaskState.PENDING  # 600 is before 600 s of b


def test_a_restored_task_held_for_its_old_worker_waits_for_that_worker() -> None:
    state = make_state()
    state.restore_hold_until = 10.0
    msg = expiring(expires=1.0)
    msg.options.expires_at = 1.0
    state.restore_task(msg, seq=1, lost=0, errors=0, holder="w")
    state.expire(5.0)
    assert state.tasks["a"].state is TaskState.WAITING  # w may be running it
    join(state, "w", now=5.0)
    state.heartbeat("w", ["a"], 1, now=5.0)  # it claims it back
    assert state.tasks["a"].state is TaskState.LEASED
    state.expire(11.0)
    assert "a" in state.tasks


def test_an_unclaimed_restored_task_expires_when_its_hold_ends() -> None:
    state = make_state()
    state.restore_hold_until = 10.0
    msg = expiring(expires=1.0)
    msg.options.expires_at = 1.0
    state.restore_task(msg, seq=1, lost=0, errors=0, holder="w")
    state.expire(5.0)
    assert "a" in state.tasks
    state.expire(10.5)
    assert ended(state).status is Status.EXPIRED


def test_a_bad_expires_from_the_wire_means_no_deadline() -> None:
    state = make_state()
    for bad in (-1.0, float("nan"), "5", True):
        state.submit([TaskMsg(f"t{bad}", "box", b"f", b"a",
                              TaskOptions(expires=bad))], now=0.0)  # type: ignore[arg-type]
    assert all(r.msg.options.expires_at == 0.0 for r in state.tasks.values())
    assert len(state.tasks) == 4


def test_explain_says_by_when_a_task_must_start_and_why_it_ended() -> None:
    from taskq.master.state.explain import explain

    state = make_state()
    state.wall_offset = 1_800_000_000.0
    state.submit([expiring(expires=5.0)], now=0.0)
    live = explain(state, "a", 1.0)
    assert live.facts["expires_at"] == 1_800_000_005.0
    assert any("unless it starts by 2027-01-15T08:00:05.000+00:00 (expires=5 s)" in r
               for r in live.reasons), live.reasons
    state.expire(6.0)
    gone = explain(state, "a", 6.0)
    assert gone.summary.startswith("ended expired")
    assert any("did not start within its expires=5 s" in r for r in gone.reasons)


def test_the_deadlines_of_ended_tasks_do_not_pile_up() -> None:
    from taskq.master.state.expiry import COMPACT_SLACK

    state = make_state(max_lost=9)
    join(state, "w", now=0.0)
    n = COMPACT_SLACK + 1000
    state.submit([expiring(f"t{i}", expires=86_400.0) for i in range(n)], now=0.0)
    state.submit([TaskMsg("kept", "other", b"f", b"a", TaskOptions(expires=86_400.0))],
                 now=0.0)
    leased = state.lease("w", n, now=1.0)
    state.complete("w", [ok(m.task_id) for m in leased], now=2.0)
    state.expire(3.0)
    assert len(state._expiry_due) <= 2 * len(state.tasks) + COMPACT_SLACK
    assert len(state.tasks) == 1
    state.expire(86_401.0)  # the one left is still looked at when its time comes
    assert fetch_all(state, "other")["kept"].status is Status.EXPIRED
