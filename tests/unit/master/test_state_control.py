"""Unit tests of BrokerState's newer states: tasks that began, cancels asked of workers,
tasks restored and held back for their holders, and jobs known after their last fetch."""

from __future__ import annotations

from state_helpers import LOST_AFTER, fetch_all, join, make_state, ok, task

from taskq.protocol.messages import Status, TaskState


def leased_to_w(*ids: str) -> object:
    state = make_state()
    state.submit([task(t) for t in ids], now=0)
    join(state, "w", now=0)
    state.lease("w", len(ids), now=0)
    state.drain_changes()
    return state


def test_a_start_is_told_to_the_submitter_once_and_again_after_a_reconnect() -> None:
    state = leased_to_w("a", "b")
    state.start("w", ["a", "ghost"])
    state.start("other", ["b"])  # not its lease: ignored
    assert state.tasks["a"].started and not state.tasks["b"].started
    assert state.fetch("box", [], 10).started == ["a"]
    assert state.fetch("box", [], 10).started == []
    state.resend("box")
    assert state.has_unsent("box")
    assert state.fetch("box", [], 10).started == ["a"]
    state.complete("w", [ok("a")], now=1)
    state.resend("box")
    fetched = state.fetch("box", [], 10)
    assert fetched.started == [] and [r.task_id for r in fetched.results] == ["a"]


def test_a_leased_task_not_begun_is_cancelled_by_its_workers_answer() -> None:
    state = leased_to_w("a", "b")
    out = state.cancel(["a", "b"])
    assert out.asked == ["a", "b"] and not out.cancelled
    assert state.has_asks("w")
    assert state.cancel(["a"]).asked == ["a"]  # asked once only
    assert state.control("w", {}) == ["a", "b"]
    assert not state.has_asks("w")

    assert state.control("w", {"a": True, "b": False}) == []
    assert fetch_all(state)["a"].status is Status.CANCELLED
    assert state.tasks["b"].started  # it runs: a cancel now says so
    assert state.cancel(["b"]).running == ["b"]
    state.complete("w", [ok("a")], now=1)  # a late result changes nothing
    assert state.outboxes["box"].results["a"].status is Status.CANCELLED


def test_a_start_after_the_ask_wins_and_an_expiry_then_requeues() -> None:
    state = leased_to_w("a")
    recs = [state.tasks["a"]]
    state.cancel(["a"])
    state.start("w", ["a"])
    assert not state.tasks["a"].cancel_asked
    assert state.cancel_progress(recs).running == ["a"]
    state.expire(now=LOST_AFTER + 1)
    assert state.tasks["a"].state is TaskState.PENDING  # requeued, not cancelled


def test_an_unanswered_ask_is_cancelled_when_the_lease_expires() -> None:
    state = leased_to_w("a")
    recs = [state.tasks["a"]]
    state.cancel(["a"])
    state.control("w", {})  # delivered; the answer never comes (worker cut off)
    state.expire(now=LOST_AFTER + 1)
    assert "a" not in state.tasks
    assert state.cancel_progress(recs).cancelled == ["a"]


def test_asks_are_delivered_again_when_the_worker_registers_again() -> None:
    state = leased_to_w("a")
    state.cancel(["a"])
    assert state.control("w", {}) == ["a"]
    join(state, "w", now=1)  # reconnected: its answer may have been lost
    assert state.control("w", {}) == ["a"]
    state.control("w", {"a": True})
    assert fetch_all(state)["a"].status is Status.CANCELLED


def test_restored_tasks_wait_for_their_holders_then_anyone_may_lease_them() -> None:
    state = make_state()
    state.restore_hold_until = 2.0
    state.restore_task(task("held"), seq=1, lost=0, errors=0, holder="holder")
    state.restore_task(task("free"), seq=2, lost=0, errors=0, holder="gone")
    join(state, "new", now=0)
    join(state, "holder", now=0)
    assert state.lease("new", 10, now=0) == []
    assert state.pending_count() == 0
    state.heartbeat("holder", ["held"], 1, now=0.5)  # claimed back by the worker that runs it
    assert state.tasks["held"].worker == "holder"
    assert state.promote(1.9) == 0
    assert state.promote(2.0) == 1  # its holder never came back: anyone may lease it now
    assert [m.task_id for m in state.lease("new", 10, now=2)] == ["free"]
    state.cancel(["held"])
    assert state.queues.waiting_count == 0


def test_a_waiting_task_can_be_cancelled() -> None:
    state = make_state()
    state.restore_hold_until = 5.0
    state.restore_task(task("a"), seq=1, lost=0, errors=0)
    assert state.cancel(["a"]).cancelled == ["a"]
    assert state.promote(10) == 0 and state.queues.next_due() is None


def test_a_job_fetched_to_the_end_is_still_known() -> None:
    state = make_state()
    assert state.open_count("job:j") is None
    state.submit([task("a", outbox="job:j")], now=0)
    join(state, "w", now=0)
    state.lease("w", 1, now=0)
    state.complete("w", [ok("a")], now=0)
    state.fetch("job:j", [], 10)
    state.fetch("job:j", ["a"], 10)
    assert "job:j" not in state.outboxes
    assert state.open_count("job:j") == 0
    assert state.open_count("job:other") is None


def test_reports_are_cut_by_size_and_keep_every_result() -> None:
    from taskq import defaults
    from taskq.protocol.messages import ResultMsg, Status
    from taskq.worker.acks import by_size

    big = defaults.BATCH_BYTES
    sizes = [0, 10, big, 5, 3 * big, 1, 0]
    results = [ResultMsg(str(i), Status.OK, b"x" * n if n else None)
               for i, n in enumerate(sizes)]
    chunks = by_size(results)
    assert [r for chunk in chunks for r in chunk] == results
    assert [[r.task_id for r in c] for c in chunks] == [["0", "1"], ["2"], ["3"], ["4"],
                                                         ["5", "6"]]
    assert by_size([]) == []
