"""What a task's end sets off, as part of ``BrokerState``: its callback task, and the stop
of the children it submitted (from inside it, with ``taskq.current_client()``).

Pure (no I/O). Both happen inside ``_finish``, so they are in the same journal commit as
the task's end: a restart neither loses nor doubles them::

    a task ends ── on_success / on_failure ──► submit TaskMsg "<id>:on_success|on_failure"
             │        (job "callbacks"; with a journal, leased only once journaled, as a
             │        schedule's tick: a restart before that would make it again)
             └─ CANCELLED ──► stop every live task whose options.parent is its id (and so
                              on down: a stopped child's children are stopped in turn)

``Children`` indexes live tasks by parent; a child leaves it when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taskq.defaults import JOB_OUTBOX_PREFIX
from taskq.master.state.records import TaskRecord
from taskq.protocol.callbacks import callback_msg
from taskq.protocol.messages import ResultMsg, Status, TaskMsg
from taskq.protocol.replies import CancelOutcome

CALLBACKS_OUTBOX = f"{JOB_OUTBOX_PREFIX}callbacks"


@dataclass(slots=True)
class Children:
    """Live tasks by the task that submitted them."""

    of: dict[str, set[str]] = field(default_factory=dict)

    def add(self, msg: TaskMsg) -> None:
        if msg.options.parent:
            self.of.setdefault(msg.options.parent, set()).add(msg.task_id)

    def ended(self, msg: TaskMsg) -> None:
        kids = self.of.get(msg.options.parent) if msg.options.parent else None
        if kids is not None:
            kids.discard(msg.task_id)
            if not kids:
                del self.of[msg.options.parent]


class FollowupsMixin:
    """The follow-up half of ``BrokerState`` (which provides what is declared here)."""

    tasks: dict[str, TaskRecord]
    children: Children
    hold_ticks: bool
    unjournaled: set[str]
    now: float

    def submit(self, tasks: list[TaskMsg], now: float) -> int:
        raise NotImplementedError  # pragma: no cover
    def stop(self, task_ids: list[str], now: float) -> CancelOutcome:
        raise NotImplementedError  # pragma: no cover

    def _followups(self, rec: TaskRecord, result: ResultMsg) -> None:
        """A task ended for good: submit its callback; a cancelled one stops its children."""
        self.children.ended(rec.msg)
        callback = callback_msg(rec.msg, result, CALLBACKS_OUTBOX)
        if callback is not None and self.submit([callback], self.now) \
                and self.hold_ticks and callback.task_id in self.tasks:
            self.unjournaled.add(callback.task_id)  # leased once the journal has it
        if result.status is Status.CANCELLED:
            kids = self.children.of.pop(rec.msg.task_id, None)
            if kids:
                self.stop(sorted(k for k in kids if k in self.tasks), self.now)
