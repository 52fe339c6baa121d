"""The broker's task history and figures, driven directly (no processes): attempts and their
classification, pruning by age and size, counters and the journal round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskq.master.journal import Journal
from taskq.master.state import BrokerState, WorkerInfo, views
from taskq.master.state.stats import FINE, percentile
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions
from taskq.protocol.options import parse_duration

pytestmark = pytest.mark.timeout(30)


def new_state() -> BrokerState:
    state = BrokerState(lost_after=5.0, max_lost=2, max_payload=1000)
    state.history.wall_offset = 1_000_000.0
    state.register(WorkerInfo("w1", "hostA", 11, 2), 0.0)
    return state


def task(n: int, retries: int = 0, queue: str = "default") -> TaskMsg:
    return TaskMsg(f"t{n}", "job:J", b"f", b"a", TaskOptions(retries=retries, queue=queue))


TRACE = 'Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: \'k\'\n'


def test_each_attempt_is_recorded_with_worker_times_and_outcome() -> None:
    state = new_state()
    state.submit([task(1, retries=1), task(2)], 1.0)
    state.lease("w1", 2, 2.0)
    state.complete("w1", [ResultMsg("t1", Status.ERROR, b"e", TRACE, "hostA:11", 0.5),
                          ResultMsg("t2", Status.OK, b"v", "", "hostA:11", 0.25)], 3.0)
    state.lease("w1", 1, 4.0)
    state.complete("w1", [ResultMsg("t1", Status.ERROR, b"e", TRACE, "hostA:11", 0.5)], 6.0)
    t1 = state.history.tasks["t1"]
    assert t1.outcome == "raised" and t1.job == "J"
    assert [(a.n, a.worker, a.host, a.pid, a.outcome, a.error_type, a.final)
            for a in t1.attempts] == [(1, "w1", "hostA", 11, "raised", "KeyError", False),
                                      (2, "w1", "hostA", 11, "raised", "KeyError", True)]
    first, second = t1.attempts
    assert (first.queued, first.leased, first.started, first.ended) == (
        1_000_001.0, 1_000_002.0, 1_000_002.5, 1_000_003.0)
    assert second.queued == 1_000_003.0 and second.started == 1_000_005.5
    assert state.history.tasks["t2"].outcome == "ok"
    counters = state.history.stats.counters
    assert counters[("submitted", "default", "")] == 2
    assert counters[("finished", "default", "raised")] == 1
    assert counters[("finished", "default", "ok")] == 1
    assert sum(state.history.stats.run["default"].counts) == 3


def test_lost_cancelled_and_refused_tasks_are_classified() -> None:
    state = new_state()
    big = TaskMsg("big", "job:J", b"f" * 2000, b"a")
    state.submit([task(1), task(2), big], 1.0)
    state.lease("w1", 1, 2.0)  # t1 leased; its worker goes silent
    state.cancel(["t2"])
    state.expire(20.0)
    state.register(WorkerInfo("w2", "hostB", 22, 1), 20.0)
    state.lease("w2", 1, 21.0)
    state.expire(40.0)  # lost a second time: it fails as lost
    hist = state.history
    assert [a.outcome for a in hist.tasks["t1"].attempts] == ["lost", "lost"]
    assert [a.worker for a in hist.tasks["t1"].attempts] == ["w1", "w2"]
    assert hist.tasks["t1"].outcome == "lost"
    assert [(a.outcome, a.worker) for a in hist.tasks["t2"].attempts] == [("cancelled", "")]
    assert hist.tasks["big"].outcome == "refused"
    assert list(hist.recent_failed) == ["big", "t2", "t1"]  # refused at submit
    copy = views.render_monitor(views.monitor_copy(state, 40.0))
    assert {w["worker_id"]: w["state"] for w in copy["workers"]} == {"w1": "lost",
                                                                     "w2": "lost"}
    assert copy["jobs"] == [{"name": "J", "open": 0, "done": 0, "failed": 3, "waiting": 3}]


def test_a_released_task_has_no_attempt() -> None:
    state = new_state()
    state.submit([task(1)], 1.0)
    state.lease("w1", 1, 2.0)
    state.release("w1", ["t1"])
    assert "t1" not in state.history.tasks
    assert views.monitor_copy(state, 3.0)["workers"][0]["state"] == "draining"


def test_history_is_pruned_by_age_then_by_size_in_bounded_rounds() -> None:
    state = new_state()
    hist = state.history
    hist.keep_s, hist.max_tasks = 100.0, 5
    state.submit([task(n) for n in range(12)], 0.0)
    for n, now in enumerate(range(12)):
        state.lease("w1", 1, float(now))
        state.complete("w1", [ResultMsg(f"t{n}", Status.OK, b"", "", "", 0.1)], float(now))
    state.drain_changes()
    assert hist.prune(50.0, batch=3) == 3  # over the size bound: oldest first, 3 per round
    assert next(iter(hist.tasks)) == "t3"
    while hist.prune(50.0, batch=3):
        pass
    assert list(hist.tasks) == [f"t{n}" for n in range(7, 12)]
    assert hist.prune(111.0, batch=100) == 4  # ended before 1_000_011 - 100... by age
    assert list(hist.tasks) == ["t11"]
    assert state.drain_changes().history_gone == [f"t{n}" for n in (*range(7), *range(7, 11))]


def test_history_and_counters_round_trip_through_the_journal(tmp_path: Path) -> None:
    state = new_state()
    journal = Journal(tmp_path / "j.db")
    try:
        state.submit([task(1, retries=1), task(2, queue="gpu")], 1.0)
        state.register(WorkerInfo("w1", "hostA", 11, 2, ("default", "gpu")), 1.0)
        state.lease("w1", 2, 2.0)
        state.complete("w1", [ResultMsg("t1", Status.ERROR, b"e", TRACE, "", 0.5)], 3.0)
        journal.write(state.drain_changes())
        state.lease("w1", 1, 4.0)
        state.complete("w1", [ResultMsg("t1", Status.OK, b"v", "", "", 0.5),
                              ResultMsg("t2", Status.CRASHED, None, "signal 9", "", 0.1)], 5.0)
        journal.write(state.drain_changes())
        assert journal.commit_seconds.counts and sum(journal.commit_seconds.counts) == 2
    finally:
        journal.close()
    again = BrokerState(lost_after=5.0, max_lost=2, max_payload=1000)
    journal = Journal(tmp_path / "j.db")
    try:
        journal.load(again)
    finally:
        journal.close()
    before, after = state.history, again.history
    assert {t: h.as_dict() for t, h in before.tasks.items()} == {
        t: h.as_dict() for t, h in after.tasks.items()}
    assert after.stats.counters == before.stats.counters
    assert after.tasks["t2"].attempts[0].detail == "signal 9"


def test_percentiles_and_durations() -> None:
    bins = [0] * (len(FINE) + 1)
    bins[10], bins[20] = 90, 10
    assert percentile(bins, 0.5) == FINE[10] and percentile(bins, 0.95) == FINE[20]
    assert percentile([0] * len(bins), 0.5) is None
    assert parse_duration("7d") == 7 * 86400 and parse_duration("1.5h") == 5400
    assert parse_duration("90") == 90 and parse_duration("2w") == 14 * 86400
    assert parse_duration("1h30m", positive=True) == 5400  # one grammar for every flag
    for bad in ("", "7x", "-1h"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="more than 0"):
        parse_duration("0", positive=True)


def test_a_lost_worker_is_listed_running_and_holding_nothing() -> None:
    state = new_state()
    state.submit([task(1), task(2)], 1.0)
    state.lease("w1", 2, 2.0)
    state.start("w1", ["t1", "t2"], 2.5)
    assert state.heartbeat("w1", ["t1", "t2"], 2, 3.0)
    busy = views.monitor_copy(state, 3.0)["workers"]
    assert [(w["state"], w["busy"], w["held"]) for w in busy] == [("active", 2, 2)]
    state.expire(20.0)  # killed: silent past its lease
    shown = views.render_monitor(views.monitor_copy(state, 20.0))
    assert [(w["worker_id"], w["state"], w["busy"], w["held"]) for w in shown["workers"]] == [
        ("w1", "lost", 0, 0)]
    assert shown["queues"][0]["depth"] == 2 and shown["queues"][0]["running"] == 0
