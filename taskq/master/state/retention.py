"""Results kept by id, as part of ``BrokerState``: a task with a ``result_ttl`` (its own, or
the master's ``--result-ttl``) keeps its result here for that long after it ended, however
often it is fetched and by whom, so any client holding the key can read it by its id.

Pure (no I/O, no clock: ``now`` is passed in). The result object is the one in the
submitter's outbox (no copy); its body stays opaque bytes. Deadlines sit on a lazy heap
(``crowd.Due``), so expiry costs a heap step per kept result and nothing per call::

    a task ends, ttl > 0 ──► keep(result, now + ttl) ──► results[id], due.add(id, until)
    read by id ──► get(id, now): the result while now < until
    reaper ──► expire(now) ──► the due ones leave; their ids stay known as expired
                               (at most EXPIRED_IDS_KEPT, oldest first out)
    journal ──► drain(): id -> (result, until) kept, or None dropped

A task with no TTL never reaches this module: the cost of the feature for it is one
comparison when it ends.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from taskq.defaults import EXPIRED_IDS_KEPT
from taskq.master.state.crowd import Due
from taskq.master.state.deps import Deps
from taskq.master.state.records import TaskRecord
from taskq.protocol.messages import MIRROR_FN, ResultMsg, TaskMsg
from taskq.protocol.replies import EXPIRED_DETAIL, ResultState


@dataclass(slots=True)
class Retained:
    """The kept results, their deadlines, and the ids that expired recently."""

    results: dict[str, ResultMsg] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)  # on the state's clock
    due: Due = field(default_factory=Due)
    expired: OrderedDict[str, None] = field(default_factory=OrderedDict)
    bytes: int = 0  # the kept bodies' total size
    changes: dict[str, tuple[ResultMsg, float] | None] = field(default_factory=dict)

    def keep(self, result: ResultMsg, until: float) -> None:
        """Keep ``result`` until ``until`` (a later end of the same id replaces it)."""
        task_id = result.task_id
        old = self.results.get(task_id)
        if old is not None:
            self.bytes -= _size(old)
        self.results[task_id] = result
        self.until[task_id] = until
        self.bytes += _size(result)
        self.due.add(task_id, until)
        self.expired.pop(task_id, None)
        self.changes[task_id] = (result, until)

    def restore(self, result: ResultMsg, until: float) -> None:
        """Put back a journaled kept result (master restart); one past its time expires at
        the reaper's next pass."""
        self.keep(result, until)
        del self.changes[result.task_id]

    def get(self, task_id: str, now: float) -> ResultMsg | None:
        """The kept result of a task, while its time has not passed."""
        result = self.results.get(task_id)
        if result is None or self.until[task_id] <= now:
            return None
        return result

    def held(self, task_id: str, now: float) -> ResultState:
        """KEPT, EXPIRED (its TTL passed, recently enough to be remembered) or UNKNOWN."""
        if self.get(task_id, now) is not None:
            return ResultState.KEPT
        if task_id in self.results or task_id in self.expired:
            return ResultState.EXPIRED
        return ResultState.UNKNOWN

    def expire(self, now: float) -> list[str]:
        """Drop the results whose time passed; returns their ids."""
        gone = self.due.pop(now, self.until.get)
        for task_id in gone:
            result = self.results.pop(task_id)
            del self.until[task_id]
            self.bytes -= _size(result)
            self.changes[task_id] = None
            self.expired[task_id] = None
            if len(self.expired) > EXPIRED_IDS_KEPT:
                self.expired.popitem(last=False)
        return gone

    def drain(self) -> dict[str, tuple[ResultMsg, float] | None]:
        changes, self.changes = self.changes, {}
        return changes


def _size(result: ResultMsg) -> int:
    return len(result.body) if result.body is not None else 0


class RetentionMixin:
    """The kept-results half of ``BrokerState`` (which provides what is declared here)."""

    retained: Retained
    result_ttl: float  # the master's default (--result-ttl); 0: keep none
    now: float
    tasks: dict[str, TaskRecord]
    deps: Deps

    def ended_result(self, task_id: str) -> ResultMsg | None: ...  # pragma: no cover

    def _retain(self, msg: TaskMsg, result: ResultMsg) -> None:
        """A task ended: keep its result for its TTL, if it has one."""
        ttl = msg.options.result_ttl
        if ttl is None:
            ttl = self.result_ttl
        if ttl > 0 and msg.fn != MIRROR_FN:
            self.retained.keep(result, self.now + ttl)

    def result_state(self, task_id: str, now: float) -> ResultState:
        """Is this task's result to be had, by id (see ``ResultState``)?"""
        if task_id in self.tasks:
            return ResultState.RUNNING
        if task_id in self.deps.kept or self.ended_result(task_id) is not None:
            return ResultState.KEPT
        return self.retained.held(task_id, now)

    def _unknown_dep(self, dep: str) -> str:
        """Why a dependency (or the task a reader's future mirrors) cannot be had."""
        if self.retained.held(dep, self.now) is ResultState.EXPIRED:
            return f"{EXPIRED_DETAIL}: task {dep} ended more than its result_ttl ago"
        return (f"the master knows no task {dep} (never submitted, or it ended and its "
                f"result was fetched)")
