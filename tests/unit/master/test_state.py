"""Unit tests of BrokerState: each rule of the broker's bookkeeping on its own."""

from __future__ import annotations

import pytest
from state_helpers import LOST_AFTER, err, fetch_all, ids, join, make_state, ok, task

from taskq.master.state import BrokerState, WorkerInfo
from taskq.protocol.messages import Beat, ResultMsg, Status, TaskMsg, TaskState, held_digest

# --------------------------------------------------------------------------- submit


def test_submit_accepts_new_ids_and_ignores_known_ones() -> None:
    state = make_state()
    assert state.submit([task("a"), task("b"), task("a")], now=0) == 2
    assert state.pending_count() == 2
    assert state.open_count("box") == 2
    first = state.tasks["a"]

    assert state.submit([task("a", priority=9), task("b")], now=1) == 0
    assert state.tasks["a"] is first
    assert state.tasks["a"].msg.options.priority == 0
    assert state.pending_count() == 2
    assert state.open_count("box") == 2


def test_resubmit_while_leased_or_while_result_waits_is_ignored() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w")
    assert ids(state.lease("w", 2, now=0)) == ["a", "b"]
    state.complete("w", [ok("b")], now=1)

    assert state.submit([task("a"), task("b")], now=2) == 0
    assert state.pending_count() == 0
    assert state.tasks["a"].state is TaskState.LEASED
    assert "b" not in state.tasks
    assert list(fetch_all(state)) == ["b"]
    assert state.open_count("box") == 1


def test_submit_refuses_task_over_max_payload() -> None:
    state = make_state(max_payload=10)
    big = task("big", args_size=20)
    assert state.submit([big, task("small")], now=0) == 1
    assert "big" not in state.tasks
    assert state.pending_count() == 1
    assert state.open_count("box") == 1

    result = state.outboxes["box"].results["big"]
    assert result.status is Status.REFUSED
    assert "21 bytes" in result.detail
    assert "10 bytes" in result.detail
    assert state.finished_failed == 1
    # A refused task resubmitted while its result waits is not refused twice.
    assert state.submit([big], now=1) == 0
    assert list(fetch_all(state)) == ["big"]


def test_task_exactly_at_max_payload_is_accepted() -> None:
    state = make_state(max_payload=10)
    assert state.submit([task("edge", args_size=9)], now=0) == 1
    assert "edge" in state.tasks


# --------------------------------------------------------------------------- lease


def test_lease_needs_a_registered_worker() -> None:
    state = make_state()
    state.submit([task("a")], now=0)
    assert state.lease("stranger", 5, now=0) == []
    join(state, "w")
    assert state.lease("w", 0, now=0) == []
    assert ids(state.lease("w", 5, now=0)) == ["a"]


def test_lease_order_is_priority_then_arrival() -> None:
    state = make_state()
    state.submit([task("low1", priority=-1), task("mid1"), task("high1", priority=5),
                  task("mid2"), task("high2", priority=5), task("low2", priority=-1)], now=0)
    join(state, "w")
    assert ids(state.lease("w", 3, now=0)) == ["high1", "high2", "mid1"]
    assert ids(state.lease("w", 10, now=0)) == ["mid2", "low1", "low2"]
    assert state.lease("w", 10, now=0) == []


def test_lease_marks_records_and_worker_held_set() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w")
    state.lease("w", 1, now=3)
    rec = state.tasks["a"]
    assert rec.state is TaskState.LEASED
    assert rec.worker == "w"
    assert rec.deadline == 3 + LOST_AFTER
    assert state.leased == {"a": rec}
    assert state.workers["w"].held == {"a"}
    assert state.pending_by_queue["default"] == 1


def test_lease_only_from_the_workers_queues() -> None:
    state = make_state()
    state.submit([task("d1"), task("g1", queue="gpu", priority=1), task("d2"),
                  task("g2", queue="gpu")], now=0)
    join(state, "cpu", queues=("default",))
    join(state, "gpu", queues=("gpu",))
    join(state, "both", queues=("default", "gpu"))

    assert ids(state.lease("cpu", 1, now=0)) == ["d1"]
    assert ids(state.lease("gpu", 1, now=0)) == ["g1"]
    # Across queues the same order holds: priority, then arrival.
    assert ids(state.lease("both", 5, now=0)) == ["d2", "g2"]
    assert state.pending_by_queue == {"default": 0, "gpu": 0}


def test_requeued_task_keeps_its_place_in_arrival_order() -> None:
    state = make_state()
    state.submit([task("a"), task("b"), task("c")], now=0)
    join(state, "w")
    join(state, "next")
    state.lease("w", 1, now=0)
    state.release("w", ["a"])
    assert ids(state.lease("next", 3, now=0)) == ["a", "b", "c"]


# --------------------------------------------------------------------------- complete


def test_ok_result_ends_task_in_its_outbox() -> None:
    state = make_state()
    state.submit([task("a", outbox="mine")], now=0)
    join(state, "w")
    state.lease("w", 1, now=0)
    result = ok("a", worker="host:1")
    state.complete("w", [result], now=1)

    assert "a" not in state.tasks
    assert state.leased == {}
    assert state.workers["w"].held == set()
    assert state.workers["w"].done == 1
    assert state.workers["w"].last_seen == 1
    assert state.finished_ok == 1
    assert state.open_count("mine") == 0
    assert state.fetch("mine", [], 10).results == [result]


def test_error_with_retries_left_requeues_then_fails() -> None:
    state = make_state()
    state.submit([task("a", retries=2)], now=0)
    join(state, "w")

    attempts = []
    for _ in range(2):
        (msg,) = state.lease("w", 1, now=0)
        attempts.append(msg.attempt)
        state.complete("w", [err("a")], now=0)
        assert state.tasks["a"].state is TaskState.PENDING
        assert state.open_count("box") == 1
    assert state.tasks["a"].errors == 2

    (msg,) = state.lease("w", 1, now=0)
    attempts.append(msg.attempt)
    final = err("a", b"third")
    state.complete("w", [final], now=0)
    assert attempts == [0, 1, 2]
    assert "a" not in state.tasks
    assert state.fetch("box", [], 10).results == [final]
    assert state.workers["w"].failed == 3
    assert state.finished_failed == 1


@pytest.mark.parametrize("status", [Status.CRASHED, Status.TIMEOUT])
def test_crash_and_timeout_are_not_retried(status: Status) -> None:
    state = make_state()
    state.submit([task("a", retries=3)], now=0)
    join(state, "w")
    state.lease("w", 1, now=0)
    state.complete("w", [ResultMsg("a", status, detail="gone")], now=0)
    assert "a" not in state.tasks
    assert [r.status for r in state.fetch("box", [], 10).results] == [status]


def test_duplicate_results_are_dropped_first_wins() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w")
    state.lease("w", 2, now=0)
    first_a, first_b = ok("a", b"1"), err("b", b"1")
    state.complete("w", [first_a, ok("a", b"2"), first_b], now=0)
    state.complete("w", [ok("a", b"3"), ok("b", b"3")], now=0)

    assert state.outboxes["box"].results == {"a": first_a, "b": first_b}
    assert state.finished_ok == 1
    assert state.finished_failed == 1
    assert state.workers["w"].done == 1
    assert state.workers["w"].failed == 1


def test_late_result_after_requeue_is_accepted_once() -> None:
    state = make_state()
    state.submit([task("a")], now=0)
    join(state, "old", now=0)
    state.lease("old", 1, now=0)
    # "old" goes silent; its lease comes back to the queue and another worker takes it.
    join(state, "new", now=20)
    assert state.expire(now=20) == ["old"]
    assert state.tasks["a"].lost == 1
    assert ids(state.lease("new", 1, now=20)) == ["a"]

    late = ok("a", b"late", worker="old")
    state.complete("old", [late], now=21)
    assert "a" not in state.tasks
    assert state.workers["new"].held == set()
    assert state.leased == {}

    state.complete("new", [ok("a", b"second")], now=22)
    assert state.fetch("box", [], 10).results == [late]
    assert state.workers["new"].done == 0


def test_late_result_for_pending_task_is_accepted() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    state.lease("w", 1, now=0)
    state.expire(now=LOST_AFTER + 1)
    assert state.tasks["a"].state is TaskState.PENDING
    assert state.pending_by_queue["default"] == 2

    state.complete("w", [ok("a")], now=12)
    assert "a" not in state.tasks
    assert state.pending_by_queue["default"] == 1
    join(state, "v", now=12)
    assert ids(state.lease("v", 5, now=12)) == ["b"]


def test_result_for_unknown_task_is_dropped() -> None:
    state = make_state()
    state.complete("nobody", [ok("ghost")], now=0)
    assert state.outboxes == {}
    assert not state.drain_changes()


# --------------------------------------------------------------------------- heartbeat / expire


def test_heartbeat_from_unknown_worker_is_refused() -> None:
    state = make_state()
    assert state.heartbeat("nobody", [], 0, now=0) is False
    assert state.workers == {}


def test_heartbeat_renews_held_leases_only() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    state.lease("w", 2, now=0)
    assert state.heartbeat("w", ["a"], 2, now=8) is True
    assert state.workers["w"].running == 2
    assert state.tasks["a"].deadline == 8 + LOST_AFTER
    assert state.tasks["b"].deadline == LOST_AFTER

    assert state.expire(now=LOST_AFTER + 1) == []
    assert state.tasks["a"].state is TaskState.LEASED
    assert state.tasks["b"].state is TaskState.PENDING
    assert state.tasks["b"].lost == 1
    assert state.workers["w"].held == {"a"}


def test_a_crowd_beats_less_often_and_is_allowed_that_much_more_silence() -> None:
    """All workers together beat at most MAX_BEATS_PER_S times a second; a worker is lost
    after LOST_BEATS of the interval it was told, when that is longer than lost_after."""
    from taskq.defaults import HEARTBEAT_S, LOST_BEATS, MAX_BEATS_PER_S

    state = make_state()
    join(state, "first", now=0)
    assert state.workers["first"].beat == HEARTBEAT_S
    crowd = int(MAX_BEATS_PER_S * 5)
    for i in range(crowd - 1):
        join(state, f"w{i}", now=0)
    last = state.workers[f"w{crowd - 2}"]
    assert last.beat == 5.0  # told at its join: 1,000 workers beat every 5 s
    assert state.silence(last) == LOST_BEATS * 5.0 > LOST_AFTER
    assert state.silence(state.workers["w0"]) == LOST_AFTER  # told 1 s when it joined
    for worker in state.workers.values():  # each heartbeat answers with the interval
        state.heartbeat(worker.worker_id, [], 0, now=0)
        assert state.beat(worker) == 5.0
    assert state.expire(now=LOST_AFTER + 1) == []  # silent past lost_after, within 3 beats
    assert len(state.expire(now=LOST_BEATS * 5.0 + 1)) == crowd


def test_a_worker_whose_poll_hung_up_is_lost_after_lost_after_even_in_a_crowd() -> None:
    """In a crowd each worker may be silent for LOST_BEATS long intervals; one whose
    poll's connection ended (its process died) is lost lost_after later, unless it is
    heard from again (a beat, or it joins again)."""
    from taskq.defaults import LOST_BEATS, MAX_BEATS_PER_S

    state = make_state()
    crowd = int(MAX_BEATS_PER_S * 5)  # each beats every 5 s: silent for 15 s is allowed
    for i in range(crowd):
        join(state, f"w{i}", now=0)
    for worker in state.workers.values():  # each heartbeat answers with the interval
        state.heartbeat(worker.worker_id, [], 0, now=1)
        state.beat(worker)
    for i in range(4):
        state.heard_from(f"w{i}", now=1, link=100 + i)
    state.submit([task("a")], now=1)
    state.lease("w0", 1, now=1)
    assert state.hung_up("w0", now=2, link=100) and state.hung_up("w1", now=2, link=101)
    assert state.hung_up("w2", now=2, link=102) and not state.hung_up("nobody", now=2, link=1)
    state.beaten("w1", Beat(held=held_digest(set()), running=0), now=3)  # alive after all
    join(state, "w2", now=4)  # it reconnected and joined again
    join(state, "w3", now=1.5)  # it joined again before the master saw its old link end:
    state.heard_from("w3", now=1.5, link=200)
    assert not state.hung_up("w3", now=2, link=103)  # that end says nothing of it now
    assert state.expire(now=2 + LOST_AFTER - 0.5) == []
    assert state.expire(now=2 + LOST_AFTER + 0.5) == ["w0"]
    assert state.tasks["a"].state is TaskState.PENDING and state.tasks["a"].lost == 1
    assert state.expire(now=1 + LOST_BEATS * 5.0 - 0.5) == []  # the others: their 15 s
    assert {"w1", "w2", "w3"} <= set(state.workers)


def test_after_a_hang_up_a_big_crowd_has_time_to_join_again() -> None:
    """A network reset ends every connection at once: each worker then has as long as the
    whole crowd needs to join again at REJOINS_PER_S, if that is longer than lost_after."""
    from taskq.defaults import LOST_BEATS, MAX_BEATS_PER_S, REJOINS_PER_S

    state = make_state()
    crowd = int(REJOINS_PER_S * LOST_AFTER * 2)  # twice what rejoins within lost_after
    for i in range(crowd):
        join(state, f"w{i}", now=0)
    worker = state.workers["w0"]
    state.beat(worker)
    state.heard_from("w0", now=0, link=1)
    assert state.hung_up("w0", now=0, link=1)
    rejoin = crowd / REJOINS_PER_S
    assert LOST_AFTER < rejoin < LOST_BEATS * crowd / MAX_BEATS_PER_S
    assert "w0" not in state.expire(now=rejoin - 0.5)  # (the others: told 1 s beats)
    assert "w0" in state.expire(now=rejoin + 0.5)


def test_expire_drops_silent_workers_and_requeues_their_leases() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "quiet", now=0)
    join(state, "chatty", now=0)
    state.lease("quiet", 1, now=0)
    state.lease("chatty", 1, now=0)
    state.heartbeat("chatty", ["b"], 1, now=LOST_AFTER)

    assert state.expire(now=LOST_AFTER) == []  # silent for exactly lost_after: not yet
    assert state.expire(now=LOST_AFTER + 0.5) == ["quiet"]
    assert set(state.workers) == {"chatty"}
    assert state.tasks["a"].state is TaskState.PENDING
    assert state.tasks["a"].lost_workers == ["quiet"]
    assert state.tasks["b"].state is TaskState.LEASED
    changes = state.drain_changes()
    assert [r.msg.task_id for r in changes.updated] == ["a"]


def test_lease_of_a_forgotten_worker_expires_at_next_expire() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    state.lease("w", 2, now=0)
    state.release("w", ["a"])
    state.forget_worker("w")
    assert state.tasks["a"].state is TaskState.PENDING
    assert state.tasks["a"].lost == 0

    state.expire(now=1)
    assert state.tasks["b"].state is TaskState.PENDING
    assert state.tasks["b"].lost_workers == ["w"]


def test_lost_attempts_are_capped_with_a_lost_result_naming_workers() -> None:
    state = make_state(max_lost=2)
    state.submit([task("a", retries=5)], now=0)
    now = 0.0
    for worker_id in ["w1", "w2"]:
        join(state, worker_id, now=now)
        (msg,) = state.lease(worker_id, 1, now=now)
        assert msg.attempt == state.tasks["a"].lost
        now += LOST_AFTER + 1
        assert state.expire(now) == [worker_id]

    assert "a" not in state.tasks
    assert state.leased == {}
    (result,) = state.fetch("box", [], 10).results
    assert result.status is Status.LOST
    assert "2 times" in result.detail
    assert "w1, w2" in result.detail
    assert state.finished_failed == 1
    assert state.open_count("box") == 0


def test_heartbeat_claims_a_restored_task_after_restart() -> None:
    state = make_state()
    state.restore_task(task("a", retries=2), seq=7, lost=1, errors=1)
    state.restore_task(task("b"), seq=8, lost=0, errors=0)
    assert state.pending_count() == 2
    assert state.open_count("box") == 2

    assert state.heartbeat("w", ["a"], 1, now=0) is False  # it must register again first
    join(state, "w", now=0)
    assert state.heartbeat("w", ["a"], 1, now=0) is True
    rec = state.tasks["a"]
    assert rec.state is TaskState.LEASED
    assert rec.worker == "w"
    assert rec.msg.attempt == 2
    assert (rec.lost, rec.errors) == (1, 1)
    assert state.workers["w"].held == {"a"}
    assert state.pending_by_queue["default"] == 1

    join(state, "other", now=0)
    assert ids(state.lease("other", 5, now=0)) == ["b"]
    state.submit([task("c")], now=0)
    assert state.tasks["c"].seq == 9


def test_heartbeat_does_not_take_a_task_leased_to_another_worker() -> None:
    state = make_state()
    state.submit([task("a")], now=0)
    join(state, "owner", now=0)
    join(state, "other", now=0)
    state.lease("owner", 1, now=0)
    state.heartbeat("other", ["a", "unknown"], 1, now=5)
    rec = state.tasks["a"]
    assert rec.worker == "owner"
    assert rec.deadline == LOST_AFTER
    assert state.workers["other"].held == set()


def test_register_again_keeps_held_leases_and_counters() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    state.lease("w", 2, now=0)
    state.complete("w", [ok("b")], now=0)
    join(state, "w", now=3, queues=("default", "gpu"))
    worker = state.workers["w"]
    assert worker.held == {"a"}
    assert worker.done == 1
    assert worker.last_seen == 3
    assert worker.queues == ("default", "gpu")


# --------------------------------------------------------------------------- release / cancel


def test_release_requeues_without_counting_an_attempt() -> None:
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    join(state, "v", now=0)
    state.lease("w", 1, now=0)
    state.lease("v", 1, now=0)

    state.release("w", ["a", "b", "unknown"])
    assert state.tasks["a"].state is TaskState.PENDING
    assert (state.tasks["a"].lost, state.tasks["a"].errors) == (0, 0)
    assert state.tasks["b"].worker == "v"  # not w's to release
    assert state.workers["w"].held == set()
    join(state, "next", now=0)
    (msg,) = state.lease("next", 5, now=0)
    assert (msg.task_id, msg.attempt) == ("a", 0)


def test_cancel_ends_queued_tasks_and_reports_running_and_unknown() -> None:
    state = make_state()
    state.submit([task("run"), task("wait"), task("done")], now=0)
    join(state, "w", now=0)
    state.lease("w", 1, now=0)
    state.heartbeat("w", ["run", "done"], 2, now=0)
    state.start("w", ["run"])
    state.complete("w", [ok("done")], now=0)
    state.drain_changes()

    out = state.cancel(["run", "wait", "done", "ghost", "wait"])
    assert out.cancelled == ["wait"]
    assert out.running == ["run"]
    assert out.unknown == ["done", "ghost", "wait"]
    assert out.asked == []
    assert "wait" not in state.tasks
    assert state.pending_count() == 0
    assert state.open_count("box") == 1
    (ended,) = state.drain_changes().finished
    assert ended[1].status is Status.CANCELLED and ended[1].task_id == "wait"
    assert fetch_all(state)["wait"].status is Status.CANCELLED

    join(state, "v", now=0)
    assert state.lease("v", 5, now=0) == []
    state.complete("w", [ok("wait")], now=0)

def finished_box(state: BrokerState, n: int) -> list[ResultMsg]:
    state.submit([task(f"t{i}") for i in range(n)], now=0)
    join(state, "w", now=0)
    state.lease("w", n, now=0)
    results = [ok(f"t{i}") for i in range(n)]
    state.complete("w", results, now=0)
    return results


def test_fetch_hands_out_each_result_once_until_resend() -> None:
    state = make_state()
    results = finished_box(state, 3)
    assert state.has_unsent("box")
    assert state.fetch("box", [], 2).results == results[:2]
    assert state.fetch("box", [], 2).results == results[2:]
    assert state.fetch("box", [], 2).results == []
    assert not state.has_unsent("box")

    state.resend("box")
    assert state.has_unsent("box")
    assert state.fetch("box", [], 10).results == results


def test_fetch_ack_forgets_results_and_drops_the_outbox() -> None:
    state = make_state()
    results = finished_box(state, 3)
    state.fetch("box", [], 10)
    assert state.fetch("box", ["t0", "t1"], 10).results == []
    assert list(state.outboxes["box"].results) == ["t2"]
    state.resend("box")
    assert state.fetch("box", [], 10).results == [results[2]]
    assert state.fetch("box", ["t2"], 10).results == []
    assert "box" not in state.outboxes
    assert state.drain_changes().acked == ["t0", "t1", "t2"]


def test_outbox_with_open_tasks_is_kept_after_ack() -> None:
    state = make_state()
    finished_box(state, 1)
    state.submit([task("later")], now=0)
    state.fetch("box", [], 10)
    state.fetch("box", ["t0"], 10)
    assert "box" in state.outboxes
    assert state.open_count("box") == 1


def test_fetch_respects_max_n_of_zero() -> None:
    state = make_state()
    finished_box(state, 2)
    assert state.fetch("box", [], 0).results == []
    assert state.has_unsent("box")
    assert len(state.fetch("box", [], 5).results) == 2


def test_fetch_from_unknown_outbox() -> None:
    state = make_state()
    assert state.fetch("nowhere", ["x"], 10).results == []
    assert not state.has_unsent("nowhere")
    assert state.open_count("nowhere") is None


def test_outboxes_are_separate() -> None:
    state = make_state()
    state.submit([task("a", outbox="one"), task("b", outbox="two")], now=0)
    join(state, "w", now=0)
    state.lease("w", 2, now=0)
    state.complete("w", [ok("a"), ok("b")], now=0)
    assert ids_of(state.fetch("one", [], 10).results) == ["a"]
    assert ids_of(state.fetch("two", [], 10).results) == ["b"]


def ids_of(results: list[ResultMsg]) -> list[str]:
    return [r.task_id for r in results]


# --------------------------------------------------------------------------- changes


def test_drain_changes_reports_each_kind_of_change() -> None:
    state = make_state(max_payload=10, max_lost=2)
    assert not state.drain_changes()

    state.submit([task("a", retries=1), task("b"), task("c", outbox="x"),
                  task("big", args_size=50)], now=0)
    changes = state.drain_changes()
    assert [r.msg.task_id for r in changes.added] == ["a", "b", "c"]
    assert [(box, r.task_id, r.status) for box, r in changes.finished] == [
        ("box", "big", Status.REFUSED)]
    assert not state.drain_changes()

    join(state, "w", now=0)
    state.lease("w", 3, now=0)
    changes = state.drain_changes()  # a lease's holder is journaled, nothing else of it
    assert changes.leased == {"a": "w", "b": "w", "c": "w"}
    changes.leased.clear()
    assert not changes

    state.complete("w", [err("a"), ok("c")], now=0)
    changes = state.drain_changes()
    assert [(r.msg.task_id, r.errors) for r in changes.updated] == [("a", 1)]
    assert [(box, r.task_id) for box, r in changes.finished] == [("x", "c")]

    state.expire(now=LOST_AFTER + 1)
    changes = state.drain_changes()
    assert [(r.msg.task_id, r.lost) for r in changes.updated] == [("b", 1)]

    assert state.cancel(["a"]).cancelled == ["a"]
    state.fetch("x", [], 10)
    state.fetch("x", ["c"], 10)
    changes = state.drain_changes()
    assert [(box, r.task_id, r.status) for box, r in changes.finished] == [
        ("box", "a", Status.CANCELLED)]
    assert changes.acked == ["c"]
    assert not changes.added
    assert not changes.removed


def test_results_of_a_gone_client_are_dropped_after_the_ttl() -> None:
    state = BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20)
    state.register(WorkerInfo("w", "h", 1, 1), 0)
    state.submit([TaskMsg("t1", "client-a", b"f", b"a"), TaskMsg("t2", "job:keep", b"f", b"a")],
                 0)
    state.touch("client-a", 0)
    for msg in state.lease("w", 2, 0):
        state.complete("w", [ResultMsg(msg.task_id, Status.OK, b"v")], 0)
    state.drain_changes()
    assert state.drop_abandoned(50, ttl=100, prefix="client-") == []
    state.touch("client-a", 60)
    assert state.drop_abandoned(150, ttl=100, prefix="client-") == []
    assert state.drop_abandoned(161, ttl=100, prefix="client-") == ["client-a"]
    assert state.drain_changes().acked == ["t1"]
    assert "client-a" not in state.outboxes
    assert list(state.outboxes["job:keep"].results) == ["t2"]  # named jobs wait to be fetched


def test_an_outbox_with_open_tasks_is_never_dropped() -> None:
    state = BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20)
    state.submit([TaskMsg("t1", "client-a", b"f", b"a")], 0)
    state.touch("client-a", 0)
    assert state.drop_abandoned(10_000, ttl=100, prefix="client-") == []
    assert state.open_count("client-a") == 1


def test_restored_tasks_wait_for_their_holders_from_when_the_master_listens() -> None:
    from taskq.master.state import RESTORING

    state = make_state()
    state.restore_hold_until = RESTORING  # the journal loads
    state.restore_task(task("t1"), seq=1, lost=0, errors=0, holder="w0")
    state.restore_task(task("t2"), seq=2, lost=0, errors=0, not_before=500.0, holder="w0")
    state.restore_task(task("t3"), seq=3, lost=0, errors=0)  # leased to no one: runs at once
    assert state.pending_count() == 1
    join(state, "w1", now=0.0)
    assert state.queues.due(100.0) == []  # however long the load took: still held
    state.open_claims(110.0)  # it listens: --lost-after more seconds, say, from then
    assert state.queues.waiting_count == 2
    assert state.queues.due(109.0) == []
    assert [r.msg.task_id for r in state.queues.due(110.0)] == ["t1"]
    assert [r.msg.task_id for r in state.queues.due(500.0)] == ["t2"]  # its own time


def test_a_holder_that_rejoins_without_a_restored_task_lets_it_run_at_once() -> None:
    from taskq.master.state import RESTORING

    state = make_state()
    state.restore_hold_until = RESTORING
    for n in (1, 2, 3):
        state.restore_task(task(f"t{n}"), seq=n, lost=0, errors=0, holder="w0")
    state.restore_task(task("t4"), seq=4, lost=0, errors=0, not_before=50.0, holder="w0")
    state.restore_task(task("other"), seq=5, lost=0, errors=0, holder="w9")
    state.open_claims(30.0)
    join(state, "w0", now=1.0)
    assert state.heartbeat("w0", ["t2"], 1, now=1.0)  # it still runs t2 alone
    assert state.tasks["t2"].worker == "w0"
    assert sorted(r.msg.task_id for r in state.queues.valid_pending("default")) == ["t1", "t3"]
    assert state.tasks["t4"].not_before == 50.0  # its own time, not the window's
    assert state.tasks["other"].not_before == 30.0  # its holder has not come back yet
    assert state.claims == {"w9": {"other": 0.0}}


def test_a_resent_result_counts_only_at_the_attempt_it_ran() -> None:
    """After a restart a worker re-sends what the old master took but may not have
    journaled: the restored task takes it, unless the journal already moved the task on."""
    from dataclasses import replace

    state = make_state()
    state.restore_task(task("kept", retries=3), seq=1, lost=0, errors=0)  # result unjournaled
    state.restore_task(task("retried", retries=3), seq=2, lost=0, errors=1)  # it had the error
    state.restore_task(task("later", retries=3), seq=3, lost=1, errors=0)
    join(state, "w1")
    outcomes = [replace(ok("kept"), attempt=0), replace(err("retried"), attempt=0),
                replace(ok("later"), attempt=1), replace(ok("ended"), attempt=0)]
    mine, refused = state.reportable("w1", outcomes, resent=True)
    assert ids_of(mine) == ["kept", "later"]
    assert ids_of(refused) == ["retried", "ended"]
    state.complete("w1", mine, now=1.0)
    assert set(fetch_all(state)) == {"kept", "later"}
    assert state.tasks["retried"].errors == 1  # its error was not counted twice
    _, refused = state.reportable("w2", [replace(ok("kept"), attempt=0)], resent=True)
    assert ids_of(refused) == ["kept"]  # ended now: a second copy changes nothing



def test_a_batch_of_leases_that_never_arrived_is_queued_again_at_the_next_take() -> None:
    """The link broke under a take's reply; the worker joins again (register) and its take,
    sent again, names the batch before: the lost one goes back at once, no attempt used."""
    state = make_state()
    state.submit([task("a"), task("b"), task("c")], now=0)
    join(state, "w", now=0)
    state.arrived("w", "")
    first = state.lease("w", 1, now=0, track=True)
    assert ids(first) == ["a"]
    state.arrived("w", "a")  # "a" came: kept
    second = state.lease("w", 2, now=1, track=True)
    assert ids(second) == ["b", "c"] and state.tasks["a"].state is TaskState.LEASED
    join(state, "w", now=2)  # it joins again after the break
    state.arrived("w", "a")  # "b", "c" never came
    for tid in ("b", "c"):
        rec = state.tasks[tid]
        assert rec.state is TaskState.PENDING and rec.lost == 0 and rec.worker is None
    assert state.tasks["a"].state is TaskState.LEASED
    state.arrived("w", "a")
    assert ids(state.lease("w", 2, now=3, track=True)) == ["b", "c"]


def test_a_stopping_worker_is_leased_nothing_more() -> None:
    """Its parked take may wake after it handed its tasks back: it gets none."""
    state = make_state()
    state.submit([task("a"), task("b")], now=0)
    join(state, "w", now=0)
    assert ids(state.lease("w", 1, now=0)) == ["a"]
    state.release("w", ["a"])
    assert state.lease("w", 2, now=1) == []
    join(state, "other", now=1)
    assert ids(state.lease("other", 2, now=1)) == ["a", "b"]
