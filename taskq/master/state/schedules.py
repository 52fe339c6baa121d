"""Periodic schedules kept by the master: when each runs next, and the task each tick makes.

Pure (no clock of its own: every call takes the wall-clock time, since cron times are wall
times); ``BrokerState`` submits the tasks a tick returns, in the same journal commit as the
schedule's new times, so a tick runs exactly once, also across a master restart::

    add(spec) ──► schedules[name] (next_run) ── due(now) ──► TaskMsg "schedule:NAME:<tick>"
                                                   │           into job "schedule:NAME"
                       missed while the master was down (now - next_run > grace):
                       catch_up="once" runs one, "skip" runs none; then next_run > now

A tick's task id is derived from the schedule and the tick's time, so a tick can never make
two tasks. Cron expressions are parsed by ``croniter`` in the schedule's time zone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from taskq.defaults import JOB_OUTBOX_PREFIX, SCHEDULE_MISSED_AFTER_S
from taskq.protocol.messages import SCHEDULE_PREFIX, Schedule, TaskMsg
from taskq.protocol.options import check


def next_after(spec: Schedule, when: float) -> float:
    """The schedule's first tick strictly after ``when`` (wall-clock epoch seconds)."""
    if spec.every:
        start = spec.last_run or when
        ticks = max(1, int((when - start) // spec.every) + 1)
        return start + ticks * spec.every
    base = datetime.fromtimestamp(when, ZoneInfo(spec.tz))
    nxt: datetime = croniter(spec.cron, base).get_next(datetime)
    return nxt.timestamp()


class Schedules:
    """Every schedule by name; see the module docstring."""

    def __init__(self) -> None:
        self.by_name: dict[str, Schedule] = {}
        self.changed: list[Schedule] = []  # for the journal
        self.removed: list[str] = []

    def add(self, spec: Schedule, now: float) -> bool:
        """Add or replace (True) a schedule; its first run is its first tick after now."""
        check(spec)
        old = self.by_name.get(spec.name)
        spec = replace(spec, next_run=0.0, last_run=0.0)
        spec.next_run = next_after(spec, now)
        if old is not None:
            spec.last_task, spec.last_outcome = old.last_task, old.last_outcome
        self.by_name[spec.name] = spec
        self.changed.append(spec)
        return old is not None

    def remove(self, name: str) -> bool:
        if self.by_name.pop(name, None) is None:
            return False
        self.removed.append(name)
        return True

    def pause(self, name: str, paused: bool, now: float) -> bool:
        spec = self.by_name.get(name)
        if spec is None:
            return False
        spec.paused = paused
        if not paused and spec.next_run <= now:
            spec.next_run = next_after(spec, now)  # no storm of the ticks it slept through
        self.changed.append(spec)
        return True

    def restore(self, spec: Schedule) -> None:
        self.by_name[spec.name] = spec

    def next_due(self) -> float | None:
        times = [s.next_run for s in self.by_name.values() if not s.paused]
        return min(times) if times else None

    def due(self, now: float) -> list[TaskMsg]:
        """The tasks of every tick due at ``now`` (at most one per schedule)."""
        out = []
        for spec in self.by_name.values():
            if spec.paused or spec.next_run > now:
                continue
            tick = spec.next_run
            missed = now - tick > SCHEDULE_MISSED_AFTER_S
            if not (missed and spec.catch_up == "skip"):
                task_id = f"{spec.job}:{tick:.3f}"
                out.append(TaskMsg(task_id, spec.outbox, spec.fn, spec.args, spec.options))
                spec.last_run, spec.last_task = tick, task_id
            spec.next_run = next_after(spec, max(now, tick))
            self.changed.append(spec)
        return out

    def ended(self, outbox: str, task_id: str, status: str) -> None:
        """A task of a schedule's job ended: its last outcome, when it is its last run."""
        if not outbox.startswith(f"{JOB_OUTBOX_PREFIX}{SCHEDULE_PREFIX}"):
            return
        spec = self.by_name.get(outbox.removeprefix(f"{JOB_OUTBOX_PREFIX}{SCHEDULE_PREFIX}"))
        if spec is not None and spec.last_task == task_id:
            spec.last_outcome = status
            self.changed.append(spec)

    def drain(self) -> tuple[list[Schedule], list[str]]:
        changed, removed = self.changed, self.removed
        self.changed, self.removed = [], []
        return changed, removed
