"""Unit tests of results kept by id (``taskq.master.state.retention``): a task's result_ttl
or the master's default keeps its result past its fetch, until the TTL passes; the journal
keeps it across a restart; a task with no TTL costs nothing."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from state_helpers import fetch_all, join, make_state, ok, task

from taskq.master import metrics
from taskq.master.journal import Journal
from taskq.master.state import BrokerState, views
from taskq.master.state import retention as retention_mod
from taskq.master.state.retention import Retained
from taskq.master.web import page
from taskq.protocol.messages import MIRROR_FN, ResultMsg, Status, TaskMsg, TaskOptions
from taskq.protocol.replies import EXPIRED_DETAIL, ResultState


def kept_task(task_id: str, ttl: float | None, outbox: str = "box") -> TaskMsg:
    return replace(task(task_id, outbox=outbox), options=TaskOptions(result_ttl=ttl))


def run_to_end(state: BrokerState, msgs: list[TaskMsg], now: float,
               body: bytes = b"value") -> None:
    """Submit, lease and complete ``msgs``; then the submitter fetches and acknowledges."""
    state.submit(msgs, now=now)
    join(state, "w", now=now)
    state.lease("w", len(msgs), now=now)
    state.complete("w", [ok(m.task_id, body) for m in msgs], now=now)
    for outbox in {m.outbox for m in msgs}:
        state.fetch(outbox, list(fetch_all(state, outbox)), 10)


def test_a_result_with_a_ttl_outlives_its_fetch_until_the_ttl_passes() -> None:
    state = make_state()
    run_to_end(state, [kept_task("a", 60.0)], now=0)
    changes = state.drain_changes()
    assert "a" in changes.acked and changes.retained["a"] == (
        state.retained.results["a"], 60.0)
    assert state.result_state("a", 59.0) is ResultState.KEPT
    assert state.ended_result("a") is state.retained.results["a"]
    assert state.retained.bytes == len(b"value")

    state.expire(now=60.5)
    assert state.result_state("a", 60.5) is ResultState.EXPIRED
    assert state.ended_result("a") is None and state.retained.bytes == 0
    assert state.drain_changes().retained == {"a": None}


def test_a_task_with_no_ttl_keeps_nothing_and_writes_nothing_more() -> None:
    state = make_state()
    run_to_end(state, [task("a")], now=0)
    changes = state.drain_changes()
    assert changes.retained == {} and not state.retained.results
    assert state.result_state("a", 1.0) is ResultState.UNKNOWN


def test_the_masters_default_applies_unless_the_task_says_otherwise() -> None:
    state = make_state()
    state.result_ttl = 30.0
    run_to_end(state, [task("dflt"), kept_task("none", 0.0), kept_task("own", 90.0)], now=0)
    assert state.retained.until == {"dflt": 30.0, "own": 90.0}


def test_a_running_task_and_an_unfetched_one_are_told_as_such() -> None:
    state = make_state()
    state.submit([task("box-a"), task("box-b")], now=0)  # (ids start with their outbox)
    join(state, "w")
    state.lease("w", 1, now=0)
    state.complete("w", [ok("box-a")], now=0)
    assert state.result_state("box-a", 0) is ResultState.KEPT  # in its outbox, not fetched
    assert state.result_state("box-b", 0) is ResultState.RUNNING
    assert state.result_state("never", 0) is ResultState.UNKNOWN


def mirror(task_id: str, of: str) -> TaskMsg:
    return TaskMsg(task_id, "reader", MIRROR_FN, b"", TaskOptions(), deps=(of,))


def test_a_reader_gets_a_kept_result_after_its_submitter_fetched_it_twice() -> None:
    state = make_state()
    run_to_end(state, [kept_task("a", 60.0)], now=0, body=b"forty-two")
    state.submit([mirror("reader-1", "a"), mirror("reader-2", "a")], now=1)
    got = fetch_all(state, "reader")
    assert [got[t].body for t in ("reader-1", "reader-2")] == [b"forty-two", b"forty-two"]
    assert "a" not in state.deps.kept and "reader-1" not in state.retained.results


def test_a_reader_of_an_expired_result_hears_it_expired() -> None:
    state = make_state()
    run_to_end(state, [kept_task("a", 5.0)], now=0)
    state.expire(now=6.0)
    state.submit([mirror("reader-1", "a")], now=6.0)
    result = fetch_all(state, "reader")["reader-1"]
    assert result.status is Status.DEPENDENCY_FAILED
    assert EXPIRED_DETAIL in result.detail


def test_expired_ids_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention_mod, "EXPIRED_IDS_KEPT", 2)
    kept = Retained()
    for n, task_id in enumerate("abc"):
        kept.keep(ResultMsg(task_id, Status.OK, b"x"), until=float(n))
    assert kept.expire(now=10.0) == ["a", "b", "c"]
    assert [kept.held(t, 10.0) for t in "abc"] == [
        ResultState.UNKNOWN, ResultState.EXPIRED, ResultState.EXPIRED]


def test_a_result_is_not_had_at_its_deadline_even_before_the_reaper_runs() -> None:
    kept = Retained()
    kept.keep(ResultMsg("a", Status.OK, b"xy"), until=5.0)
    assert kept.get("a", 4.9) is not None and kept.get("a", 5.0) is None
    assert kept.held("a", 5.0) is ResultState.EXPIRED
    kept.keep(ResultMsg("a", Status.OK, b"xyz"), until=9.0)  # a later end replaces it
    assert kept.bytes == 3 and kept.expire(now=6.0) == []


def test_kept_results_survive_a_restart_and_expire_on_time(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    now = time.monotonic()
    state = make_state()
    run_to_end(state, [kept_task("a", 60.0), kept_task("b", 0.5), task("c")], now=now)
    journal = Journal(path)
    try:
        journal.write(state.drain_changes())
        state.expire(now=now + 1.0)  # b expires: its row goes
        journal.write(state.drain_changes())
    finally:
        journal.close()
    again = make_state()
    journal = Journal(path)
    try:
        journal.load(again)
    finally:
        journal.close()
    assert set(again.retained.results) == {"a"}
    assert again.retained.results["a"].body == b"value"
    assert again.retained.until["a"] == pytest.approx(now + 60.0, abs=1.0)
    assert again.drain_changes().retained == {}  # a restore writes nothing back


def test_the_dashboard_and_metrics_show_the_kept_results_and_their_bytes() -> None:
    state = make_state()
    run_to_end(state, [kept_task("a", 60.0), kept_task("b", 60.0), task("c")], now=0,
               body=b"x" * 1536)
    shot = views.render_monitor(views.monitor_copy(state, 1.0))
    shot.update(uptime=1.0, durable=False)
    assert shot["kept"] == {"results": 2, "bytes": 3072}
    assert 'data-tile="kept"><b>2\u00a0·\u00a03.0 KiB</b>' in page.render(shot)

    class Snap:
        def metrics(self) -> dict[str, object]:
            return {**views.metrics_copy(state), "commit": None}

    text = metrics.exposition(metrics.registry_for(Snap())).decode()
    assert "taskq_kept_results 2.0" in text and "taskq_kept_result_bytes 3072.0" in text
    state.expire(now=61.0)
    assert views.metrics_copy(state)["kept"] == {"results": 0, "bytes": 0}
