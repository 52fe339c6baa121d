"""The records the broker's state is made of: tasks, workers, outboxes, and what changed.

Plain dataclasses with no behaviour of their own; ``taskq.master.state.BrokerState`` owns every
change to them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from taskq.protocol.messages import ResultMsg, Schedule, Status, TaskMsg, TaskState


@dataclass(slots=True)
class TaskRecord:
    msg: TaskMsg
    seq: int
    state: TaskState = TaskState.PENDING
    worker: str | None = None
    deadline: float = 0.0
    lost: int = 0  # times it was leased to a worker that was then lost
    errors: int = 0  # times it raised and was retried
    ticket: int = 0  # validates queue entries (lazy deletion)
    not_before: float = 0.0  # WAITING: when it may be leased
    started: bool = False  # LEASED: its worker said the task began running
    cancel_asked: bool = False  # LEASED, not started: its worker was asked to drop it
    ended: Status | None = None  # DONE: how it ended
    lost_workers: list[str] = field(default_factory=list)
    queued_at: float = 0.0  # when it was (last) queued, on the broker's clock (0: unknown)
    stop_asked: bool = False  # a cancel that stops it even while it runs (journaled): it
    #                           ends CANCELLED, never retried, never queued again
    started_at: float = 0.0  # LEASED, started: when its worker said it began (broker clock)
    progress: Any = None  # LEASED: its last reported taskq.worker.report.Progress (transient)
    progress_updates: int = 0  # progress updates received for this run (transient)
    # workers that could not load it -> why (journaled; see taskq.master.state.unloadable)
    refused_by: dict[str, str] | None = None


@dataclass(slots=True)
class WorkerInfo:
    worker_id: str
    host: str
    pid: int
    procs: int
    queues: tuple[str, ...] = ("default",)
    last_seen: float = 0.0
    running: int = 0
    held: set[str] = field(default_factory=set)
    done: int = 0
    failed: int = 0
    to_ask: list[str] = field(default_factory=list)  # cancel requests not yet delivered
    asked: set[str] = field(default_factory=set)  # delivered, not answered yet
    pool: str = "processes"  # what runs its tasks: processes, threads or asyncio
    resources: tuple[tuple[str, float], ...] = ()  # what it has (--resources)
    draining: bool = False  # it handed back its unstarted tasks, or was asked to: it stops
    drain_asked: bool = False  # an operator asked it to drain (taskq worker drain)
    drain_polled: bool = False  # a poll's answer told it so (its parked poll was woken)
    memory: int = 0  # resident bytes of the worker and its pool, from its last heartbeat
    beat: float = 0.0  # the heartbeat interval it was last told (see BrokerState.beat)
    sent: list[str] = field(default_factory=list)  # its last leases, until a take says
    # they arrived (see BrokerState.lease)
    # leases it did not list in its last heartbeat (nor on their way to it): renewed no
    # more by its beats, they expire at their own deadline (see BrokerState.lease_expires)
    unconfirmed: set[str] = field(default_factory=set)
    # when the connection of its poll ended (None: not since it joined): unless it is heard
    # from again, it is lost ``lost_after`` later, however long its beat interval
    hung_up: float | None = None
    link: int = 0  # the number of the connection it last polled on (net.serving.name_peer)


@dataclass(slots=True)
class Outbox:
    results: dict[str, ResultMsg] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    open: int = 0  # tasks accepted for this outbox that have not ended yet
    last_seen: float = 0.0  # when its submitter was last in touch (0: not since a restart)
    running: set[str] = field(default_factory=set)  # its tasks that started and run now
    to_tell: set[str] = field(default_factory=set)  # started tasks the submitter has not heard of
    done: int = 0  # its tasks that ended OK since the master started (for progress views)
    failed: int = 0  # ... and those that ended otherwise
    progressed: set[str] = field(default_factory=set)  # running tasks whose progress changed
    #                                                    since the last fetch


@dataclass(slots=True)
class Changes:
    """What one or more calls changed, for the journal."""

    added: list[TaskRecord] = field(default_factory=list)
    updated: list[TaskRecord] = field(default_factory=list)
    finished: list[tuple[str, ResultMsg]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)  # added or changed
    schedules_removed: list[str] = field(default_factory=list)
    limits: list[tuple[str, Any]] = field(default_factory=list)  # (queue, QueueLimit | None)
    joined: list[tuple[str, str, str]] = field(default_factory=list)  # (alias, outbox, target)
    unjoined: list[str] = field(default_factory=list)  # aliases settled or cancelled
    prims: list[tuple[Any, ...]] = field(default_factory=list)  # see taskq.master.journal.prims
    attempts: list[Any] = field(default_factory=list)  # ended history.Attempt records
    history_gone: list[str] = field(default_factory=list)  # tasks pruned from history
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # increments
    # dependency results kept for dependents (None: dropped), and tasks with dependencies
    # that ended or were forgotten (see taskq.master.state.deps and taskq.master.journal.deps)
    kept: dict[str, ResultMsg | None] = field(default_factory=dict)
    deps_gone: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)  # tasks asked to stop (stop_asked)
    leased: dict[str, str] = field(default_factory=dict)  # task id -> the worker leased it
    # results kept by id: id -> (result, until on the state's clock), or None once dropped
    # (see taskq.master.state.retention and taskq.master.journal.retention)
    retained: dict[str, tuple[ResultMsg, float] | None] = field(default_factory=dict)
    dead: list[Any] = field(default_factory=list)  # dead letters new or changed (state.dead)
    dead_gone: list[str] = field(default_factory=list)  # ... and forgotten
    paused: list[tuple[str, bool]] = field(default_factory=list)  # (queue, paused), in order

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.finished or self.removed or self.acked
                    or self.schedules or self.schedules_removed or self.limits or self.joined
                    or self.unjoined or self.prims or self.attempts or self.history_gone
                    or self.counts or self.kept or self.deps_gone or self.stops
                    or self.leased or self.retained or self.dead or self.dead_gone
                    or self.paused)


