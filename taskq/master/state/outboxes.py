"""Outboxes, as part of ``BrokerState``: where each submitter's results wait until it
fetched and acknowledged them, and which of its tasks run.

    _deliver(outbox, result) ──► box.results ──► fetch(ack): forget acked, hand out unsent
                                                  (and started tasks, progress) ──► ack ──► gone
    a submitter reconnects ──► resend: unacked results and running tasks told again
    nobody fetches for ``ttl`` ──► drop_abandoned (client outboxes waiting for no task)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from taskq.defaults import BATCH_BYTES, JOB_OUTBOX_PREFIX, KNOWN_JOBS_KEPT
from taskq.master.state.deps import Deps
from taskq.master.state.followups import Children
from taskq.master.state.history import History
from taskq.master.state.records import Changes, Outbox, TaskRecord
from taskq.master.state.retention import Retained
from taskq.protocol.messages import ResultMsg
from taskq.protocol.replies import Fetched


class OutboxesMixin:
    """The outbox half of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    outboxes: dict[str, Outbox]
    emptied_jobs: OrderedDict[str, None]
    changes: Changes
    history: History
    deps: Deps
    retained: Retained
    now: float
    children: Children

    def _unlease(self, rec: TaskRecord) -> None: ...  # pragma: no cover
    _release_deps: Callable[[TaskRecord], None]  # taskq.master.state.deps
    progress_of: Callable[[Outbox], dict[str, tuple[Any, ...]]]  # taskq.master.state.stops

    def restore_result(self, outbox: str, result: ResultMsg) -> None:
        self._outbox(outbox).results[result.task_id] = result

    def fetch(self, outbox: str, ack: list[str], max_n: int) -> Fetched:
        """Forget acknowledged results, then hand out up to max_n not yet sent, and the
        tasks that started since the last fetch."""
        box = self.outboxes.get(outbox)
        if box is None:
            return Fetched()
        for task_id in ack:
            if box.results.pop(task_id, None) is not None:
                self.changes.acked.append(task_id)
            box.sent.discard(task_id)
        out = Fetched()
        if box.progressed:
            out.progress = self.progress_of(box)
        if box.to_tell:
            out.started, box.to_tell = list(box.to_tell), set()
        size = 0
        if len(box.sent) < len(box.results):
            for task_id, result in box.results.items():
                if len(out.results) >= max_n or size >= BATCH_BYTES:
                    break
                if task_id not in box.sent:
                    box.sent.add(task_id)
                    out.results.append(result)
                    size += len(result.body or b"")
        self._maybe_drop_outbox(outbox, box)
        return out

    def has_unsent(self, outbox: str) -> bool:
        box = self.outboxes.get(outbox)
        return box is not None and (len(box.sent) < len(box.results) or bool(box.to_tell))

    def resend(self, outbox: str) -> None:
        """A submitter reconnected: results sent but not acknowledged are sent again, and
        it hears again which of its tasks run."""
        box = self.outboxes.get(outbox)
        if box is not None:
            box.sent.clear()
            box.to_tell = set(box.running)
            box.progressed = set(box.running)

    def forget_ended(self, outbox: str, task_ids: list[str]) -> None:
        """The submitter already has these tasks' results: a master restarted before it
        journaled their end holds them as unfinished; they are dropped, not run again."""
        for task_id in task_ids:
            rec = self.tasks.get(task_id)
            if rec is None or rec.msg.outbox != outbox or self.deps.dependents(task_id) \
                    or rec.msg.options.on_failure or rec.msg.options.on_success:
                continue  # (one that dependents wait for, or with a callback, ends again:
                # they need its result)
            self.children.ended(rec.msg)
            self._unlease(rec)
            self._release_deps(rec)
            self.history.withdraw(task_id)
            del self.tasks[task_id]
            self._outbox(outbox).open -= 1
            self.changes.removed.append(task_id)

    def touch(self, outbox: str, now: float) -> None:
        """The outbox's submitter is in touch."""
        box = self.outboxes.get(outbox)
        if box is not None:
            box.last_seen = now

    def drop_abandoned(self, now: float, ttl: float, prefix: str) -> list[str]:
        """Drop the results of outboxes named ``prefix...`` whose submitter has not been in
        touch for ``ttl`` seconds and that wait for no task; returns their names."""
        dropped = []
        for name, box in list(self.outboxes.items()):
            if not name.startswith(prefix) or box.open > 0:
                continue
            if box.last_seen == 0.0:
                box.last_seen = now  # restored from the journal: the clock starts now
            elif now - box.last_seen > ttl:
                self.changes.acked.extend(box.results)
                del self.outboxes[name]
                dropped.append(name)
        return dropped

    def open_count(self, outbox: str) -> int | None:
        """Tasks of an outbox not ended yet; None if the master knows no such outbox."""
        box = self.outboxes.get(outbox)
        if box is not None:
            return box.open
        return 0 if outbox in self.emptied_jobs else None

    def _outbox(self, name: str) -> Outbox:
        box = self.outboxes.get(name)
        if box is None:
            box = self.outboxes[name] = Outbox()
            self.emptied_jobs.pop(name, None)
        return box

    def ended_result(self, task_id: str) -> ResultMsg | None:
        """The result of an ended task still in its outbox (not fetched yet), or kept for
        its ``result_ttl``, if any."""
        box = self.outboxes.get(task_id.rsplit("-", 1)[0])
        result = None if box is None else box.results.get(task_id)
        if result is None and self.retained.results:
            result = self.retained.get(task_id, self.now)
        return result

    def _has_result(self, outbox: str, task_id: str) -> bool:
        box = self.outboxes.get(outbox)
        return box is not None and task_id in box.results

    def _maybe_drop_outbox(self, name: str, box: Outbox) -> None:
        if not box.results and box.open <= 0:
            del self.outboxes[name]
            if name.startswith(JOB_OUTBOX_PREFIX):
                self.emptied_jobs[name] = None
                if len(self.emptied_jobs) > KNOWN_JOBS_KEPT:
                    self.emptied_jobs.popitem(last=False)

    def _deliver(self, outbox: str, result: ResultMsg) -> Outbox:
        """Put an open task's result in its outbox (journaled); returns the outbox."""
        box = self._outbox(outbox)
        box.open -= 1
        box.results[result.task_id] = result
        self.changes.finished.append((outbox, result))
        return box
