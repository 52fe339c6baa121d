"""Task dependencies, as part of ``BrokerState``: dependents wait on the master until each
dependency ended, and the results they need are kept for them.

Pure (no I/O). A task whose ``msg.deps`` names tasks that have not ended is BLOCKED; when
the last one ends OK it is queued as any task (its delay, priority, limits and resources
still apply); when one ends otherwise it ends at once, DEPENDENCY_FAILED, without running,
and so do its own dependents in turn::

    submit(deps) ── each dep: live ──► blocked on it (Deps.waiting_on[dep], missing[task])
                 │            kept / result in its outbox, OK ──► refs += 1
                 │            failed, unknown ──► DEPENDENCY_FAILED at once
                 └─ too many blocked (--max-pending) ──► REFUSED at once
    a dep ends ── OK ──► kept[dep] (refs = its live dependents); each: missing -= 1 ──► 0:
              │          queued (or held until its run_at)
              └─ not OK ──► each blocked dependent ends DEPENDENCY_FAILED (and theirs ...)
    lease ──► TaskMsg.inputs = the kept results of its deps
    a dependent ends (any way) ──► refs -= 1 on each kept dep ──► 0: the result is dropped

A dependency's kept result is independent of its submitter's outbox: acknowledging it
there does not drop it. Cycles cannot happen: a task id is known only once its task was
submitted, so every dependency is older than its dependents. Kept results and the
dependency lists are journaled (``taskq.master.journal.deps``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from taskq.defaults import MAX_PENDING
from taskq.master.state.queues import TaskQueues
from taskq.master.state.records import TaskRecord
from taskq.master.state.uniques import Uniques
from taskq.protocol import deps
from taskq.protocol.messages import MIRROR_FN, ResultMsg, Status, TaskMsg, TaskState


@dataclass(slots=True)
class Kept:
    """A dependency's OK result, kept while dependents that have not ended need it."""

    result: ResultMsg
    refs: int = 0


@dataclass(slots=True)
class Deps:
    """The bookkeeping: who waits on whom, and the results kept for dependents."""

    tasks: dict[str, TaskRecord]  # the state's own live tasks (shared, read only here)
    limit: int = MAX_PENDING  # at most this many tasks blocked at once (--max-pending)
    waiting_on: dict[str, list[str]] = field(default_factory=dict)  # dep -> dependents
    missing: dict[str, int] = field(default_factory=dict)  # blocked task -> deps not ended
    kept: dict[str, Kept] = field(default_factory=dict)
    todo: deque[tuple[str, ResultMsg]] = field(default_factory=deque)  # ended, to propagate
    busy: bool = False  # propagating (a dependent's end queues, does not recurse)
    kept_changes: dict[str, ResultMsg | None] = field(default_factory=dict)  # journal
    gone: list[str] = field(default_factory=list)  # ended tasks that had deps (journal)

    def blockers(self, task_id: str) -> list[str]:
        """The dependencies of a live task that have not ended yet (in its order)."""
        rec = self.tasks.get(task_id)
        if rec is None or rec.state is not TaskState.BLOCKED:
            return []
        return [d for d in rec.msg.deps if d not in self.kept]

    def dependents(self, dep: str) -> list[str]:
        """The live tasks blocked on ``dep``."""
        return [t for t in self.waiting_on.get(dep, ())
                if (r := self.tasks.get(t)) is not None and r.state is TaskState.BLOCKED]

    @property
    def blocked_count(self) -> int:
        return len(self.missing)

    def keep(self, result: ResultMsg) -> Kept:
        kept = self.kept.get(result.task_id)
        if kept is None:
            kept = self.kept[result.task_id] = Kept(result)
            self.kept_changes[result.task_id] = result
        return kept

    def restore_kept(self, result: ResultMsg) -> None:
        """Put back a journaled kept result (its references come with its dependents)."""
        self.kept[result.task_id] = Kept(result)

    def unref(self, dep: str) -> None:
        kept = self.kept.get(dep)
        if kept is not None:
            kept.refs -= 1
            if kept.refs <= 0:
                del self.kept[dep]
                self.kept_changes[dep] = None

    def inputs(self, msg: TaskMsg) -> TaskMsg:
        """A leased task's message with its dependencies' results attached."""
        if not msg.deps:
            return msg
        return replace(msg, inputs=tuple(pair for d in msg.deps
                                         if (k := self.kept.get(d)) is not None
                                         and (pair := deps.input_of(k.result)) is not None))

    def forget_unreferenced(self) -> None:
        """After a restore: drop kept results no live task needs."""
        for dep in [d for d, k in self.kept.items() if k.refs <= 0]:
            del self.kept[dep]
            self.kept_changes[dep] = None

    def drain(self) -> tuple[dict[str, ResultMsg | None], list[str]]:
        kept, gone = self.kept_changes, self.gone
        self.kept_changes, self.gone = {}, []
        return kept, gone


class DepsMixin:
    """The dependency half of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    queues: TaskQueues
    uniques: Uniques
    deps: Deps
    wall_offset: float
    now: float

    def _finish(self, rec: TaskRecord, result: ResultMsg) -> None: ...  # pragma: no cover
    _unknown_dep: Callable[[str], str]  # taskq.master.state.retention
    def ended_result(self, task_id: str) -> ResultMsg | None: ...  # pragma: no cover

    def _dep_verdict(self, msg: TaskMsg) -> tuple[list[str], ResultMsg | None]:
        """The deps of a new task that have not ended, and the outcome of one that ended
        other than OK (or is unknown), which fails the task."""
        missing: list[str] = []
        for dep in msg.deps:
            kept = self.deps.kept.get(dep)
            ended = kept.result if kept is not None else None
            if ended is None and dep in self.tasks:
                missing.append(dep)
                continue
            if ended is None:
                ended = self.ended_result(dep)
            if ended is None:
                return missing, ResultMsg(dep, Status.REFUSED, detail=self._unknown_dep(dep))
            if ended.status is not Status.OK and dep not in msg.options.allow_failed:
                return missing, ended
        return missing, None

    def _take_deps(self, rec: TaskRecord, missing: list[str]) -> None:
        """Hold references on the ended deps of a task, and block it on the others."""
        msg = rec.msg
        waiting = set(missing)
        for dep in msg.deps:
            if dep not in waiting:
                kept = self.deps.kept.get(dep)
                if kept is None:
                    ended = self.ended_result(dep)
                    assert ended is not None  # noqa: S101 -- _dep_verdict found it
                    kept = self.deps.keep(ended)
                kept.refs += 1
        if missing:
            self.deps.missing[msg.task_id] = len(missing)
            for dep in missing:
                self.deps.waiting_on.setdefault(dep, []).append(msg.task_id)

    def _accept_deps(self, rec: TaskRecord) -> bool:
        """A new task with deps: True if it may be queued now; else it is blocked, or it
        ended (a dep failed)."""
        msg = rec.msg
        rec.state = TaskState.BLOCKED  # in no queue (until ``_unblock``)
        if len(set(msg.deps)) != len(msg.deps):
            msg.deps = tuple(dict.fromkeys(msg.deps))
        missing, failed = self._dep_verdict(msg)
        if failed is not None:
            self._end_unheld(rec, dependency_failure(msg.task_id, failed.task_id, failed))
            return False
        if missing and self.deps.blocked_count >= self.deps.limit:
            self._end_unheld(rec, ResultMsg(msg.task_id, Status.REFUSED, detail=(
                f"{self.deps.blocked_count} tasks already wait for their dependencies: the "
                f"master's --max-pending is {self.deps.limit}")))
            return False
        self._take_deps(rec, missing)
        if missing:
            return False
        return not self._mirror_ready(rec)

    def _restore_deps(self, rec: TaskRecord) -> bool:
        """A journaled task with deps (master restart): True if it may be queued; else it
        is blocked again (its kept deps referenced anew), or ended (a dep's result is gone,
        which the journal's transactions never leave)."""
        rec.state = TaskState.BLOCKED
        gone = [d for d in rec.msg.deps if d not in self.deps.kept and d not in self.tasks]
        if gone:
            self._end_unheld(rec, dependency_failure(rec.msg.task_id, gone[0], ResultMsg(
                gone[0], Status.LOST, detail="its result was lost when the master restarted")))
            return False
        missing = [d for d in rec.msg.deps if d not in self.deps.kept]
        self._take_deps(rec, missing)
        return not missing and not self._mirror_ready(rec)

    def _end_unheld(self, rec: TaskRecord, result: ResultMsg) -> None:
        """End a task that took no reference on its deps' results (it never waited)."""
        deps, rec.msg.deps = rec.msg.deps, ()
        try:
            self._finish(rec, result)
        finally:
            rec.msg.deps = deps
        self.deps.gone.append(rec.msg.task_id)  # (a restored one has a journaled row)

    def _mirror_ready(self, rec: TaskRecord) -> bool:
        """A mirror (no function) whose dep ended ends with a copy of its result (True)."""
        if rec.msg.fn != MIRROR_FN:
            return False
        kept = self.deps.kept[rec.msg.deps[0]]
        self._finish(rec, replace(kept.result, task_id=rec.msg.task_id, worker="",
                                  duration=0.0))
        return True

    def _deps_ended(self, rec: TaskRecord, result: ResultMsg) -> None:
        """A task ended: release what it held as a dependent, and settle its dependents
        (breadth first, with no recursion however deep the graph)."""
        task_id = rec.msg.task_id
        self._release_deps(rec)
        if task_id not in self.deps.waiting_on:
            return
        self.deps.todo.append((task_id, result))
        if self.deps.busy:
            return
        self.deps.busy = True
        try:
            while self.deps.todo:
                self._settle_dependents(*self.deps.todo.popleft())
        finally:
            self.deps.busy = False

    def _release_deps(self, rec: TaskRecord) -> None:
        """A dependent ended or is forgotten: it needs its deps' results no more."""
        if rec.msg.deps:
            self.deps.gone.append(rec.msg.task_id)
            self.deps.missing.pop(rec.msg.task_id, None)
            for dep in rec.msg.deps:
                self.deps.unref(dep)

    def _settle_dependents(self, dep: str, result: ResultMsg) -> None:
        waiters = [self.tasks[t] for t in self.deps.waiting_on.pop(dep, ())
                   if t in self.tasks and self.tasks[t].state is TaskState.BLOCKED]
        if not waiters:
            return
        if result.status is not Status.OK:
            strict = [r for r in waiters if dep not in r.msg.options.allow_failed]
            waiters = [r for r in waiters if dep in r.msg.options.allow_failed]
            for rec in strict:
                if self.tasks.get(rec.msg.task_id) is rec:
                    self._finish(rec, dependency_failure(rec.msg.task_id, dep, result))
            waiters = [r for r in waiters if self.tasks.get(r.msg.task_id) is r]
            if not waiters:
                return
        kept = self.deps.keep(result)
        kept.refs += len(waiters)
        for rec in waiters:
            left = self.deps.missing[rec.msg.task_id] - 1
            self.deps.missing[rec.msg.task_id] = left
            if left <= 0:
                self._unblock(rec)

    def _unblock(self, rec: TaskRecord) -> None:
        """Every dep ended OK: queue it as a new task (or hold it until its run_at)."""
        del self.deps.missing[rec.msg.task_id]
        if self._mirror_ready(rec):
            return
        start = rec.msg.options.run_at - self.wall_offset
        if rec.msg.options.run_at and start > self.now:
            self.queues.hold(rec, start)
        else:
            self.queues.push(rec)


def dependency_failure(task_id: str, dep: str, outcome: ResultMsg) -> ResultMsg:
    """The result of a task whose dependency ``dep`` ended with ``outcome`` (not OK), built
    from plain values: the master unpickles nothing."""
    why = outcome.detail.splitlines()[-1] if outcome.detail else outcome.status.value
    return ResultMsg(task_id, Status.DEPENDENCY_FAILED,
                     deps.failure_body(dep, outcome.status.value, outcome.body,
                                               outcome.detail),
                     detail=f"dependency {dep} ended {outcome.status.value}: {why}"[:1000])
