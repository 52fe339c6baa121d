"""The journal's group commit: merged batches, tickets, and what cancels out."""

from __future__ import annotations

from pathlib import Path

from taskq.master.journal import Journal, merge
from taskq.master.state import BrokerState, Changes, WorkerInfo
from taskq.protocol.messages import ResultMsg, Status, TaskMsg


def _state() -> BrokerState:
    return BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20)


def _task(i: int, outbox: str = "c") -> TaskMsg:
    return TaskMsg(f"t{i}", outbox, b"fn", b"args")


def _run(state: BrokerState, n: int) -> list[Changes]:
    """Submit n tasks, run the first half to completion; one Changes per call."""
    out = []
    state.submit([_task(i) for i in range(n)], 0.0)
    out.append(state.drain_changes())
    state.register(WorkerInfo("w", "h", 1, 1), 0.0)
    leased = state.lease("w", n // 2, 0.0)
    state.complete("w", [ResultMsg(t.task_id, Status.OK, b"v") for t in leased], 0.0)
    out.append(state.drain_changes())
    return out


def test_merged_batch_skips_tasks_that_came_and_went() -> None:
    batches = _run(_state(), 10)
    merged = merge(batches)
    assert [r.msg.task_id for r in merged.added] == [f"t{i}" for i in range(5, 10)]
    assert [res.task_id for _, res in merged.finished] == [f"t{i}" for i in range(5)]
    assert merged.removed == []


def test_merged_batch_skips_results_acked_within_it() -> None:
    state = _state()
    batches = _run(state, 8)
    state.fetch("c", [], 10)
    state.fetch("c", ["t0", "t1"], 10)
    batches.append(state.drain_changes())
    merged = merge(batches)
    assert sorted(res.task_id for _, res in merged.finished) == ["t2", "t3"]
    assert merged.acked == []


def test_group_commit_then_reload(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    state = _state()
    tickets = [journal.append(c) for c in _run(state, 10)]
    journal.wait(tickets[-1])
    journal.close()
    again = _state()
    reopened = Journal(tmp_path / "j.db")
    try:
        assert reopened.load(again) == (5, 5)
    finally:
        reopened.close()
    assert sorted(again.tasks) == [f"t{i}" for i in range(5, 10)]
    assert sorted(again.outboxes["c"].results) == [f"t{i}" for i in range(5)]


def test_close_flushes_what_is_queued(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    state = _state()
    state.submit([_task(i) for i in range(3)], 0.0)
    journal.append(state.drain_changes())
    journal.close()
    reopened = Journal(tmp_path / "j.db")
    try:
        assert reopened.load(_state()) == (3, 0)
    finally:
        reopened.close()
