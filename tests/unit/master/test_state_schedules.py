"""Unit tests of schedules on an injected wall clock: ticks, time zones, missed ticks, and the
journal round trip."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from state_helpers import join, make_state, ok

from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.protocol.messages import Schedule, Status, TaskOptions

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def every(name: str = "tick", seconds: float = 30.0, **kw: object) -> Schedule:
    return Schedule(name, b"fn", b"args", every=seconds, **kw)  # type: ignore[arg-type]


def state_at_wall(wall: float) -> BrokerState:
    """A state whose clock reads 0 at wall-clock time ``wall``."""
    state = make_state()
    state.wall_offset = wall
    return state


def test_an_interval_schedule_makes_one_task_per_tick() -> None:
    state = state_at_wall(T0)
    assert state.schedule_add(every(), now=0) is False
    assert state.next_due() == 30.0
    assert state.promote(29.9) == 0
    assert state.promote(30.0) == 1
    (rec,) = state.tasks.values()
    assert rec.msg.outbox == "job:schedule:tick"
    assert rec.msg.task_id == f"schedule:tick:{T0 + 30:.3f}"
    assert state.promote(30.5) == 0  # the same tick makes nothing more
    assert state.promote(60.0) == 1
    assert state.schedules.by_name["tick"].next_run == T0 + 90


def test_a_cron_schedule_runs_in_its_time_zone() -> None:
    state = state_at_wall(T0)  # 12:00 UTC = 13:00 in Berlin
    spec = Schedule("nightly", b"f", b"a", cron="0 2 * * *", tz="Europe/Berlin")
    state.schedule_add(spec, now=0)
    nxt = state.schedules.by_name["nightly"].next_run
    assert datetime.fromtimestamp(nxt, ZoneInfo("Europe/Berlin")).isoformat() == \
        "2026-12-01T02:00:00+01:00"


@pytest.mark.parametrize(("policy", "runs"), [("once", 1), ("skip", 0)])
def test_ticks_missed_while_the_master_was_down_follow_the_policy(policy: str,
                                                                  runs: int) -> None:
    state = state_at_wall(T0)
    state.schedule_add(every(catch_up=policy), now=0)
    assert state.promote(3 * 3600) == runs  # 360 ticks missed: at most one run
    assert state.schedules.by_name["tick"].next_run > T0 + 3 * 3600


def test_replace_pause_resume_remove() -> None:
    state = state_at_wall(T0)
    state.schedule_add(every(), now=0)
    assert state.schedule_add(every(seconds=10), now=0) is True
    assert state.schedule_pause("tick", True, now=0)
    assert state.promote(100) == 0 and state.next_due() is None
    assert state.schedule_pause("tick", False, now=100)
    assert state.schedules.by_name["tick"].next_run == T0 + 110  # no storm after a pause
    assert state.schedule_remove("tick") and not state.schedule_remove("tick")
    assert not state.schedule_pause("tick", True, now=0)


@pytest.mark.parametrize(("spec", "message"), [
    (Schedule("x", b"", b"", cron="61 * * * *"), "'61 \\* \\* \\* \\*'.*out of range"),
    (Schedule("x", b"", b"", cron="0 2 30 2 *"), "never comes"),  # February 30
    (Schedule("x", b"", b"", cron="* * *"), "expected five fields.*not 3"),
    (Schedule("x", b"", b"", cron="ten past two"), "expected five fields.*not 3"),
    (Schedule("x", b"", b"", every=5, tz="Mars/Base"), "unknown time zone"),
    (Schedule("x", b"", b"", cron="* * * * *", every=5), "not both"),
    (Schedule("x", b"", b""), "not both or neither"),
    (Schedule("x", b"", b"", every=-1), "positive interval"),
    (Schedule("", b"", b"", every=1), "bad schedule name"),
    (Schedule("x", b"", b"", every=1, catch_up="all"), "catch_up must be"),
])
def test_a_bad_schedule_is_refused_with_what_is_wrong(spec: Schedule, message: str) -> None:
    state = make_state()
    with pytest.raises(ValueError, match=message):
        state.schedule_add(spec, now=0)
    assert not state.schedules.by_name


def test_the_last_outcome_is_kept_and_old_results_are_bounded() -> None:
    state = state_at_wall(T0)
    state.schedule_add(every(seconds=1), now=0)
    join(state, "w", now=0)
    for t in range(1, 106):
        assert state.promote(float(t)) == 1
        (msg,) = state.lease("w", 1, now=t)
        state.complete("w", [ok(msg.task_id)], now=t)
    assert state.schedules.by_name["tick"].last_outcome == Status.OK.value
    assert len(state.outboxes["job:schedule:tick"].results) == 100


def test_schedules_survive_the_journal(tmp_path: Path) -> None:
    state = state_at_wall(T0)
    journal = Journal(tmp_path / "journal.db")
    state.schedule_add(every(options=TaskOptions(retries=2, queue="q")), now=0)
    state.schedule_add(Schedule("gone", b"f", b"a", every=5), now=0)
    journal.write(state.drain_changes())
    state.schedule_remove("gone")
    state.promote(30)
    journal.write(state.drain_changes())
    journal.close()
    fresh = state_at_wall(T0)
    Journal(tmp_path / "journal.db").load(fresh)
    (spec,) = fresh.schedules.by_name.values()
    assert (spec.name, spec.every, spec.next_run, spec.last_run) == ("tick", 30, T0 + 60, T0 + 30)
    assert spec.options == TaskOptions(retries=2, queue="q")
    assert list(fresh.tasks) == [f"schedule:tick:{T0 + 30:.3f}"]  # the tick's task, once


def test_a_tick_is_leased_only_once_the_journal_has_it() -> None:
    """A restart before the journal has a tick (and its schedule's next run) creates the
    tick again: with a journal, no worker gets it before then, so it never runs twice."""
    state = state_at_wall(T0)
    state.hold_ticks = True  # a master with a journal
    state.schedule_add(every(), now=0)
    join(state, "w")
    assert state.promote(30.0) == 1
    (tick,) = state.tasks
    assert state.unjournaled == {tick}
    assert not state.can_lease(("default",), 30.0)
    assert state.lease("w", 5, 30.0) == []
    state.ticks_journaled([tick])
    assert state.can_lease(("default",), 30.0)
    assert [m.task_id for m in state.lease("w", 5, 30.0)] == [tick]
