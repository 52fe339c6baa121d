"""Unit tests of limits and unique tasks in the broker state, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from state_helpers import fetch_all, join, make_state, ok

from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.master.state.limits import QueueLimit
from taskq.protocol.messages import Status, TaskMsg, TaskOptions, TaskState
from taskq.protocol.options import parse_rate


def t(task_id: str, queue: str = "default", key: str = "", limit: int = 0, unique: str = "",
      unique_for: float = 0.0, outbox: str = "box") -> TaskMsg:
    options = TaskOptions(queue=queue, limit_key=key, limit=limit, unique=unique,
                          unique_for=unique_for)
    return TaskMsg(task_id, outbox, b"f", b"a", options)


def leased(state: BrokerState, worker: str, n: int, now: float) -> list[str]:
    return [m.task_id for m in state.lease(worker, n, now)]


def test_a_queues_concurrency_caps_its_leases_and_frees_as_tasks_end() -> None:
    state = make_state()
    state.limits.set("default", QueueLimit(concurrency=2))
    state.submit([t(f"a{i}") for i in range(4)], now=0)
    join(state, "w", now=0)
    assert leased(state, "w", 10, now=0) == ["a0", "a1"]
    assert not state.can_lease(("default",), now=0)
    state.complete("w", [ok("a0")], now=1)
    assert leased(state, "w", 10, now=1) == ["a2"]


def test_a_queues_rate_is_a_token_bucket() -> None:
    state = make_state()
    state.limits.set("default", QueueLimit(rate=2.0))  # 2/s, a burst of 2
    state.submit([t(f"a{i}") for i in range(6)], now=0)
    join(state, "w", now=0)
    assert len(leased(state, "w", 10, now=0)) == 2
    assert leased(state, "w", 10, now=0.25) == []
    assert state.limits.next_token(("default",), now=0.25) == pytest.approx(0.5)
    assert len(leased(state, "w", 10, now=0.5)) == 1
    assert len(leased(state, "w", 10, now=10)) == 2  # never more than the burst


def test_a_limited_key_or_queue_blocks_nothing_behind_it() -> None:
    state = make_state()
    state.submit([t("k1", key="tenant-1", limit=1), t("k2", key="tenant-1", limit=1),
                  t("other", key="tenant-2", limit=1), t("free")], now=0)
    state.submit([t("gpu", queue="gpu")], now=0)
    state.limits.set("gpu", QueueLimit(concurrency=1))
    join(state, "w", now=0, queues=("default", "gpu"))
    assert sorted(leased(state, "w", 10, now=0)) == ["free", "gpu", "k1", "other"]
    state.complete("w", [ok("k1")], now=1)
    assert leased(state, "w", 10, now=1) == ["k2"]


def test_rates_are_parsed_or_refused() -> None:
    assert parse_rate("10/s") == 10 and parse_rate("600/m") == 10 and parse_rate("36/h") == 0.01
    for bad in ("ten/s", "10", "-1/s", "0/s", "5/d"):
        with pytest.raises(ValueError, match="bad rate"):
            parse_rate(bad)


def test_a_unique_submit_joins_the_live_task_and_gets_its_result() -> None:
    state = make_state()
    state.submit([t("first", unique="inv-1")], now=0)
    state.submit([t("second", unique="inv-1", outbox="other"), t("second",
                  unique="inv-1", outbox="other")], now=1)
    assert list(state.tasks) == ["first"] and state.open_count("other") == 1
    join(state, "w", now=1)
    assert leased(state, "w", 10, now=1) == ["first"]
    state.complete("w", [ok("first", b"charged")], now=2)
    assert fetch_all(state, "other")["second"].body == b"charged"
    assert fetch_all(state)["first"].body == b"charged"
    state.submit([t("third", unique="inv-1")], now=3)  # it ended: a new submit runs again
    assert "third" in state.tasks


def test_unique_for_answers_from_the_ended_task_for_a_while() -> None:
    state = make_state()
    state.submit([t("first", unique="k", unique_for=10)], now=0)
    join(state, "w", now=0)
    leased(state, "w", 1, now=0)
    state.complete("w", [ok("first", b"v")], now=1)
    state.submit([t("within", unique="k", unique_for=10)], now=5)
    assert "within" not in state.tasks and fetch_all(state)["within"].body == b"v"
    state.submit([t("after", unique="k", unique_for=10)], now=12)
    assert "after" in state.tasks


def test_cancelling_a_joined_submit_leaves_the_task_to_the_others() -> None:
    state = make_state()
    state.submit([t("first", unique="k"), t("joined", unique="k", outbox="other")], now=0)
    assert state.cancel(["joined"]).cancelled == ["joined"]
    assert fetch_all(state, "other")["joined"].status is Status.CANCELLED
    assert state.tasks["first"].state is TaskState.PENDING


def test_limits_and_joined_submits_survive_the_journal(tmp_path: Path) -> None:
    state = make_state()
    journal = Journal(tmp_path / "journal.db")
    state.limits.set("default", QueueLimit(rate=5, concurrency=3))
    state.limits.set("gone", QueueLimit(concurrency=1))
    state.limits.set("gone", None)
    state.submit([t("first", unique="k"), t("joined", unique="k", outbox="other")], now=0)
    journal.write(state.drain_changes())
    journal.close()
    fresh = make_state()
    Journal(tmp_path / "journal.db").load(fresh)
    assert fresh.limits.by_queue == {"default": QueueLimit(5, 3)}
    assert fresh.uniques.aliases == {"joined": "first"} and fresh.open_count("other") == 1
    fresh.promote(10)
    join(fresh, "w", now=10)
    leased(fresh, "w", 1, now=10)
    fresh.complete("w", [ok("first")], now=10)
    assert "joined" in fetch_all(fresh, "other")
