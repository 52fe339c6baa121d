"""Unit tests of the broker state's timing rules on an injected clock: retries that wait
for their backoff (by failure kind), and tasks delayed until a time."""

from __future__ import annotations

import pytest
from state_helpers import join, make_state, ok

from taskq.master.state import BrokerState
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, TaskState


def retrying(task_id: str = "a", *, retries: int = 5, backoff: float = 1.0,
             max_backoff: float = 60.0, jitter: bool = False, run_at: float = 0.0) -> TaskMsg:
    options = TaskOptions(retries=retries, backoff=backoff, max_backoff=max_backoff,
                          jitter=jitter, run_at=run_at)
    return TaskMsg(task_id, "box", b"f", b"a", options)


def fail(state: BrokerState, now: float, task_id: str = "a", *,
         status: Status = Status.ERROR, retry: bool | None = None) -> None:
    (msg,) = state.lease("w", 1, now)
    assert msg.task_id == task_id
    state.complete("w", [ResultMsg(task_id, status, b"e", retry=retry)], now)


def test_the_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    state = make_state()
    options = TaskOptions(backoff=1.0, max_backoff=10.0, jitter=False)
    assert [state.backoff(options, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert state.backoff(TaskOptions(), 3) == 0.0  # no backoff: at once
    state.random.seed(7)
    drawn = [state.backoff(TaskOptions(backoff=1.0, max_backoff=10.0), n) for n in range(1, 7)]
    caps = [1, 2, 4, 8, 10, 10]
    assert all(0 <= d <= cap for d, cap in zip(drawn, caps, strict=True))
    assert len(set(drawn)) == len(drawn)  # full jitter: drawn, not fixed


def test_a_retry_waits_its_backoff_holding_no_worker_slot() -> None:
    state = make_state(max_lost=9)
    state.submit([retrying()], now=0)
    join(state, "w", now=0)
    fail(state, now=10)
    rec = state.tasks["a"]
    assert (rec.state, rec.errors, rec.not_before) == (TaskState.WAITING, 1, 11.0)
    assert state.workers["w"].held == set() and state.pending_count() == 0
    assert state.lease("w", 1, now=10.5) == []
    assert state.promote(10.9) == 0 and state.promote(11.0) == 1
    fail(state, now=12)
    assert state.tasks["a"].not_before == 14.0  # 2 s: the second retry
    assert state.drain_changes().updated[-1] is state.tasks["a"]  # journaled


def test_only_the_failures_retry_on_names_are_retried() -> None:
    state = make_state()
    state.submit([retrying(backoff=0)], now=0)
    join(state, "w", now=0)
    fail(state, now=0, status=Status.TIMEOUT, retry=True)  # TaskTimeout named
    assert state.tasks["a"].state is TaskState.PENDING
    fail(state, now=0, status=Status.TIMEOUT)  # not named: the worker sent no retry flag
    assert "a" not in state.tasks


def test_a_raised_exception_the_worker_marks_not_retryable_ends_the_task() -> None:
    state = make_state()
    state.submit([retrying(backoff=0)], now=0)
    join(state, "w", now=0)
    fail(state, now=0, retry=False)
    (result,) = state.fetch("box", [], 10).results
    assert result.status is Status.ERROR


def test_the_last_attempts_outcome_is_the_one_the_submitter_sees() -> None:
    state = make_state()
    state.submit([retrying(retries=2, backoff=0)], now=0)
    join(state, "w", now=0)
    fail(state, now=0)
    fail(state, now=0)
    state.lease("w", 1, now=0)
    state.complete("w", [ok("a", b"third")], now=0)
    (result,) = state.fetch("box", [], 10).results
    assert (result.status, result.body) == (Status.OK, b"third")


def test_a_delayed_task_waits_for_its_time_and_can_be_cancelled_meanwhile() -> None:
    state = make_state()
    state.wall_offset = 1000.0  # the wall clock reads 1000 s ahead of the state's clock
    state.submit([retrying("later", run_at=1005.0), retrying("now", run_at=900.0)], now=0)
    assert state.tasks["later"].state is TaskState.WAITING
    assert state.tasks["later"].not_before == 5.0
    assert state.tasks["now"].state is TaskState.PENDING  # its time has passed
    assert state.queues.next_due() == 5.0
    join(state, "w", now=0)
    assert [m.task_id for m in state.lease("w", 5, now=1)] == ["now"]
    assert state.promote(4.99) == 0 and state.promote(5.0) == 1
    state.submit([retrying("cancel_me", run_at=1010.0)], now=5)
    assert state.cancel(["cancel_me"]).cancelled == ["cancel_me"]
    assert state.promote(100) == 0


@pytest.mark.parametrize("hold", [0.0, 2.0])
def test_a_restored_waiting_task_keeps_its_time(hold: float) -> None:
    state = make_state()
    state.restore_hold_until = hold
    state.restore_task(retrying("a"), seq=1, lost=0, errors=1, not_before=30.0)
    assert state.tasks["a"].state is TaskState.WAITING
    assert state.promote(29) == 0 and state.promote(30) == 1
