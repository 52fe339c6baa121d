"""``Client``'s calls in time: tasks that start later, and schedules the master runs.

    submit_after(s, fn) / submit_at(when, fn) ── TaskOptions.run_at ──► Client._submit ──►
        master: waits (journaled, holding no worker slot), queued when its time comes
    schedule(name, fn, cron= | every=) ── check(spec) here ──► master.schedule_add
        master: each tick submits one run, in the job "schedule:NAME"
    unschedule(name) / schedules() ──► master.schedule_remove / schedules
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from taskq import logs
from taskq.client.future import TaskFuture
from taskq.protocol import bodies
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import DEFAULT_OPTIONS, Schedule, TaskOptions
from taskq.protocol.options import check, interval, start_time

log = logs.get_logger(__name__)


class Scheduling:
    """The time half of ``taskq.Client`` (which provides what is declared here)."""

    _remote: BrokerAPI

    def _encode_fn(self, fn: Callable[..., Any]) -> bytes:
        raise NotImplementedError  # pragma: no cover

    def _submit(self, fn: bytes, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: TaskOptions | None) -> TaskFuture[Any]:
        raise NotImplementedError  # pragma: no cover

    def submit_after(self, seconds: float, fn: Callable[..., Any], /, *args: Any,
                     **kwargs: Any) -> TaskFuture[Any]:
        """Like ``submit``, but the task starts no sooner than ``seconds`` from now; it waits
        on the master (journaled, holding no worker slot) and can be cancelled meanwhile."""
        return self._submit_later(start_time(delay=seconds), fn, args, kwargs)

    def submit_at(self, when: datetime, fn: Callable[..., Any], /, *args: Any,
                  **kwargs: Any) -> TaskFuture[Any]:
        """Like ``submit_after``, at a timezone-aware ``datetime`` (a naive one is an error)."""
        return self._submit_later(start_time(when=when), fn, args, kwargs)

    def _submit_later(self, run_at: float, fn: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> TaskFuture[Any]:
        options = replace(getattr(fn, "taskq_options", None) or DEFAULT_OPTIONS, run_at=run_at)
        return self._submit(self._encode_fn(fn), args, kwargs, options)

    def schedule(self, name: str, fn: Callable[..., Any], /, *args: Any, cron: str = "",
                 every: float | timedelta | str = 0.0, tz: str = "UTC", catch_up: str = "once",
                 **kwargs: Any) -> bool:
        """Run ``fn(*args, **kwargs)`` periodically, by the master: on a cron expression (in
        time zone ``tz``) or ``every`` interval. Its runs are the job ``schedule:NAME``. A
        schedule of the same name is replaced (returns True, and logs it). Ticks missed while
        the master was down: ``catch_up="once"`` runs one, ``"skip"`` none."""
        spec = Schedule(name, self._encode_fn(fn), bodies.encode_args(args, kwargs),
                        getattr(fn, "taskq_options", None) or DEFAULT_OPTIONS, cron,
                        interval(every), tz, catch_up)
        check(spec)  # a bad definition fails here, before anything reaches the master
        replaced = self._remote.schedule_add(spec)
        if replaced:
            log.info("schedule_replaced", schedule=name)
        return replaced

    def unschedule(self, name: str) -> bool:
        """Remove a schedule (its runs already made still run); False if there is none."""
        return self._remote.schedule_remove(name)

    def schedules(self) -> list[Schedule]:
        """Every schedule on the master: next run, last run and its outcome."""
        return self._remote.schedules()
