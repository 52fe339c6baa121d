"""The journal: what a BrokerState changed, written to SQLite and loaded into a fresh state."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq.master.journal import Journal, merge
from taskq.master.state import BrokerState, Changes, TaskRecord, WorkerInfo
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, TaskState

LOST_AFTER = 10.0


def make_state() -> BrokerState:
    return BrokerState(lost_after=LOST_AFTER, max_lost=3, max_payload=100)


def task(task_id: str, *, outbox: str = "box", priority: int = 0, queue: str = "default",
         retries: int = 0, timeout: float | None = None, args: bytes = b"args") -> TaskMsg:
    return TaskMsg(task_id, outbox, b"fn-" + task_id.encode(), args,
                   TaskOptions(timeout=timeout, retries=retries, priority=priority, queue=queue))


class Journaled:
    """A BrokerState whose changes are written after every call, as the master does."""

    def __init__(self, path: Path) -> None:
        self.state = make_state()
        self.journal = Journal(path)

    def commit(self) -> None:
        self.journal.write(self.state.drain_changes())


def reload(path: Path) -> tuple[BrokerState, tuple[int, int]]:
    state = make_state()
    journal = Journal(path)
    try:
        counts = journal.load(state)
    finally:
        journal.close()
    return state, counts


def task_rows(state: BrokerState) -> list[tuple[object, ...]]:
    recs = sorted(state.tasks.values(), key=lambda r: r.seq)
    return [(r.msg.task_id, r.msg.outbox, r.msg.fn, r.msg.args, r.msg.options, r.seq, r.lost,
             r.errors) for r in recs]


def build_history(j: Journaled) -> dict[str, ResultMsg]:
    """Submit, lease, retry, lose, finish, acknowledge and cancel; returns unacked results."""
    s = j.state
    s.submit([task("retry", retries=2, timeout=1.5), task("lost", priority=3, queue="gpu"),
              task("ok1", outbox="other"), task("ok2"), task("cancel"), task("acked"),
              task("plain", priority=-1), task("held"), task("big", args=b"x" * 200)], now=0)
    j.commit()
    s.register(WorkerInfo("w", "host", 1, 2, ("default", "gpu")), now=0)
    leased = {m.task_id for m in s.lease("w", 6, now=0)}
    assert leased == {"lost", "retry", "ok1", "ok2", "cancel", "acked"}
    results = {"ok1": ResultMsg("ok1", Status.OK, b"1", "", "host:1", 0.25),
               "ok2": ResultMsg("ok2", Status.ERROR, b"err", "", "host:1", 0.5),
               "acked": ResultMsg("acked", Status.OK, b"a", "", "host:1", 0.1)}
    s.complete("w", [ResultMsg("retry", Status.ERROR, b"e"), *results.values()], now=1)
    j.commit()
    s.release("w", ["cancel"])
    assert s.cancel(["cancel"]).cancelled == ["cancel"]
    j.commit()
    s.fetch("box", [], 100)
    s.fetch("box", ["acked"], 100)
    j.commit()
    # "w" goes silent: "lost" (still leased) comes back with lost=1.
    s.register(WorkerInfo("v", "host", 2, 1, ("default",)), now=20)
    s.heartbeat("v", ["held"], 1, now=20)
    assert s.expire(now=20) == ["w"]
    j.commit()
    del results["acked"]
    results["big"] = s.outboxes["box"].results["big"]
    results["cancel"] = s.outboxes["box"].results["cancel"]  # a cancelled task's result
    return results


def test_changes_reload_pending_tasks_and_unacked_results(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journaled(path)
    unacked = build_history(j)
    assert j.state.tasks["held"].state is TaskState.LEASED  # its holder is journaled
    expected = task_rows(j.state)
    assert [row[0] for row in expected] == ["retry", "lost", "plain", "held"]
    j.journal.close()

    fresh, counts = reload(path)
    assert counts == (4, 4)
    assert task_rows(fresh) == expected
    assert fresh.tasks["retry"].errors == 1
    assert fresh.tasks["retry"].msg.options == TaskOptions(1.5, 2, 0, "default")
    assert fresh.tasks["lost"].lost == 1
    assert all(r.state is TaskState.PENDING for r in fresh.tasks.values())
    assert fresh.leased == {}
    assert fresh.pending_by_queue == {"default": 3, "gpu": 1}
    assert fresh.open_count("box") == 4
    assert fresh.open_count("other") == 0

    restored = {**fresh.outboxes["box"].results, **fresh.outboxes["other"].results}
    assert restored == unacked
    assert all(isinstance(r.status, Status) for r in restored.values())

    fresh.register(WorkerInfo("w2", "host", 3, 1, ("default", "gpu")), now=0)
    leased = fresh.lease("w2", 10, now=0)
    assert [(m.task_id, m.attempt) for m in leased] == [
        ("lost", 1), ("retry", 1), ("held", 0), ("plain", 0)]


def test_a_lease_holder_is_journaled_and_waits_for_its_claim_after_a_restart(
        tmp_path: Path) -> None:
    from taskq.master.state import RESTORING

    path = tmp_path / "journal.db"
    j = Journaled(path)
    unacked = build_history(j)
    del unacked
    j.journal.close()
    fresh = make_state()
    fresh.restore_hold_until = RESTORING  # as a master does while it loads
    journal = Journal(path)
    try:
        journal.load(fresh)
    finally:
        journal.close()
    # "held" was leased to "v" when the master went away; "lost" and "retry" were queued
    # again (their holder cleared), "plain" was never leased
    assert fresh.claims == {"v": {"held": 0.0}}
    assert fresh.tasks["held"].state is TaskState.WAITING
    assert {t for t, r in fresh.tasks.items() if r.state is TaskState.PENDING} == {
        "lost", "retry", "plain"}
    fresh.open_claims(5.0)
    fresh.register(WorkerInfo("v", "host", 2, 1, ("default",)), now=1.0)
    assert fresh.heartbeat("v", ["held"], 1, now=1.0)  # it claims it back
    assert fresh.tasks["held"].worker == "v" and fresh.claims == {}


def test_reloaded_state_ignores_resubmits_and_keeps_numbering(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journaled(path)
    build_history(j)
    j.journal.close()

    fresh, _ = reload(path)
    assert fresh.submit([task("retry"), task("ok1", outbox="other"), task("big")], now=0) == 0
    assert fresh.submit([task("new")], now=0) == 1
    assert fresh.tasks["new"].seq > max(r.seq for r in fresh.tasks.values() if r.msg.task_id
                                        != "new")
    # Cancelled and acknowledged tasks are gone for good.
    assert "cancel" not in fresh.tasks
    assert "acked" not in fresh.outboxes["box"].results


def test_reopened_journal_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "journal.db"
    j = Journaled(path)
    j.state.submit([task("a"), task("b")], now=0)
    j.commit()
    j.journal.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0

    j2 = Journaled(path)
    assert j2.journal.load(j2.state) == (2, 0)
    j2.state.register(WorkerInfo("w", "host", 1, 1), now=0)
    j2.state.lease("w", 1, now=0)
    j2.state.complete("w", [ResultMsg("a", Status.OK, b"v")], now=0)
    j2.state.submit([task("c")], now=0)
    j2.commit()
    j2.journal.close()

    fresh, counts = reload(path)
    assert counts == (2, 1)
    assert [r.msg.task_id for r in sorted(fresh.tasks.values(), key=lambda r: r.seq)] == [
        "b", "c"]
    assert fresh.outboxes["box"].results["a"].body == b"v"


def test_journal_uses_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    try:
        with closing(sqlite3.connect(path)) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        journal.close()


def test_empty_changes_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    journal.write(Changes())
    journal.close()
    assert reload(path)[1] == (0, 0)


def test_a_failed_write_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    good = TaskRecord(msg=task("good"), seq=1)
    bad = TaskRecord(msg=TaskMsg("bad", "box", None, b"", TaskOptions()), seq=2)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        journal.write(Changes(added=[good, bad]))
    journal.write(Changes(added=[TaskRecord(msg=task("after"), seq=3)]))
    journal.close()

    fresh, counts = reload(path)
    assert counts == (1, 0)
    assert list(fresh.tasks) == ["after"]


# --------------------------------------------------------------------------- group commit


def test_result_acked_in_the_same_group_still_ends_its_task(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journaled(path)
    j.state.submit([task("a"), task("b")], now=0)
    j.commit()
    j.state.register(WorkerInfo("w", "host", 1, 1), now=0)
    j.state.lease("w", 2, now=0)
    calls: list[Changes] = []
    j.state.complete("w", [ResultMsg("a", Status.OK, b"v")], now=0)
    calls.append(j.state.drain_changes())
    j.state.fetch("box", [], 10)
    j.state.fetch("box", ["a"], 10)
    calls.append(j.state.drain_changes())
    j.journal.write(merge(calls))
    j.journal.close()

    fresh, counts = reload(path)
    assert counts == (1, 0)
    assert list(fresh.tasks) == ["b"]


OPS = ["submit", "run_ok", "run_ok", "run_error", "lose", "fetch", "deliver", "cancel"]


def play(ops: list[tuple[str, bool]]) -> tuple[BrokerState, list[list[Changes]]]:
    """Run a history of calls; returns the state and each call's changes, in groups."""
    state = make_state()
    now = 0.0
    worker = WorkerInfo("w", "host", 1, 1)
    state.register(worker, now)
    groups: list[list[Changes]] = [[]]
    for n, (op, cut) in enumerate(ops):
        if op == "submit":
            state.submit([task(f"t{n}", retries=1), task(f"u{n}")], now)
        elif op in ("run_ok", "run_error"):
            status = Status.OK if op == "run_ok" else Status.ERROR
            state.complete("w", [ResultMsg(m.task_id, status, b"v")
                                 for m in state.lease("w", 2, now)], now)
        elif op == "lose":
            state.lease("w", 1, now)
            now += LOST_AFTER + 1
            state.expire(now)
            state.register(worker, now)
        elif op == "fetch":
            state.fetch("box", [], 2)
        elif op == "deliver":  # a client's round trip: fetch, then acknowledge what came
            state.fetch("box", [r.task_id for r in state.fetch("box", [], 3).results], 0)
        else:
            state.cancel([t for t, r in state.tasks.items() if r.state is TaskState.PENDING][:1])
        groups[-1].append(state.drain_changes())
        if cut:
            groups.append([])
    return state, groups


def durable_view(state: BrokerState) -> tuple[dict[str, tuple[int, int, int]],
                                                dict[str, ResultMsg]]:
    tasks = {t: (r.seq, r.lost, r.errors) for t, r in state.tasks.items()}
    results = {t: r for box in state.outboxes.values() for t, r in box.results.items()}
    return tasks, results


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(OPS), st.sampled_from([False, False, True])),
                    min_size=1, max_size=25))
def test_group_commits_reload_what_the_state_holds(tmp_path: Path,
                                                   ops: list[tuple[str, bool]]) -> None:
    state, groups = play(ops)
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    journal = Journal(path)
    for group in groups:
        journal.write(merge(group))
    journal.close()

    fresh, _ = reload(path)
    assert durable_view(fresh) == durable_view(state)


def test_restored_tasks_with_the_same_options_share_one_options_object(tmp_path: Path) -> None:
    """A million restored tasks must not each hold a copy of the same options."""
    path = tmp_path / "journal.db"
    state = make_state()
    state.submit([TaskMsg("a", "box", b"f", b"x", TaskOptions(retries=2)),
                  TaskMsg("b", "box", b"f", b"x", TaskOptions(retries=2)),
                  TaskMsg("c", "box", b"f", b"x", TaskOptions(retries=2, queue="other"))],
                 now=0)
    journal = Journal(path)
    journal.write(state.drain_changes())
    journal.close()
    fresh = make_state()
    reopened = Journal(path)
    try:
        assert reopened.load(fresh) == (3, 0)
    finally:
        reopened.close()
    a, b, c = (fresh.tasks[t].msg.options for t in "abc")
    assert a is b and a == TaskOptions(retries=2)
    assert c is not a and c.queue == "other" and c.retries == 2


def test_a_task_added_and_leased_in_one_group_is_written_once_with_its_holder(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journaled(path)
    j.state.register(WorkerInfo("w", "host", 1, 1, ("default",)), now=0)
    j.state.submit([task("a"), task("b")], now=0)
    assert [m.task_id for m in j.state.lease("w", 1, now=0)] == ["a"]
    statements: list[str] = []
    j.journal._db.set_trace_callback(statements.append)
    j.commit()
    j.journal._db.set_trace_callback(None)
    assert not [s for s in statements if s.startswith("UPDATE tasks SET holder")]
    with closing(sqlite3.connect(path)) as db:
        holders = dict(db.execute("SELECT task_id, holder FROM tasks").fetchall())
    assert holders == {"a": "w", "b": ""}
    j.journal.close()
