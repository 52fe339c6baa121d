"""Replaying dead letters: each a new task with the failed task's call, or why there is none.

    BrokerState.replay(ids, new_ids, outbox, now)
        for each id: a live dead letter ──► TaskMsg(new id, outbox, its fn/args/options)
                                             ──► BrokerState.submit; linked both ways
                     expired / still open / succeeded / not kept / unknown ──► an error line

Pure, as the rest of the state: the broker journals what changed (the new task, the dead
letter's ``replayed_as``) before it answers.
"""

from __future__ import annotations

from typing import Protocol

from taskq.master.state.dead import DeadLetters
from taskq.master.state.history import History
from taskq.master.state.records import TaskRecord
from taskq.protocol.messages import TaskMsg
from taskq.protocol.replies import Replayed


class ReplayState(Protocol):
    """What a replay uses of ``BrokerState`` (which this module must not import)."""

    tasks: dict[str, TaskRecord]
    dead: DeadLetters
    history: History

    def submit(self, tasks: list[TaskMsg], now: float) -> int: ...

    def _has_result(self, outbox: str, task_id: str) -> bool: ...

MAX_REPLAY = 1000  # task ids one replay call may name (a --failed replay goes in batches)


def replay(state: ReplayState, task_ids: list[str], new_ids: list[str], outbox: str,
           now: float, *, echo: bool = False) -> list[Replayed]:
    """Replay each of ``task_ids`` as the task ``new_ids[i]`` of ``outbox``; ``echo``: the
    answer carries each new task (for a submitter that keeps what it sent)."""
    if len(task_ids) != len(new_ids) or len(task_ids) > MAX_REPLAY:
        raise ValueError(f"replay takes as many new ids as task ids, at most {MAX_REPLAY}")
    out: list[Replayed] = []
    for task_id, new_id in zip(task_ids, new_ids, strict=True):
        problem = refusal(state, task_id, new_id, outbox)
        if problem:
            out.append(Replayed(task_id=task_id, error=problem))
            continue
        letter = state.dead.letters[task_id]
        msg = state.dead.task(letter, new_id, outbox)
        state.submit([msg], now)
        state.dead.replayed(letter, new_id)
        out.append(Replayed(task_id=task_id, new_id=new_id, task=msg if echo else None))
    return out


def refusal(state: ReplayState, task_id: str, new_id: str, outbox: str) -> str:
    """Why ``task_id`` cannot be replayed as ``new_id`` ("" if it can)."""
    letter = state.dead.letters.get(task_id)
    if letter is not None and letter.expired:
        days = state.history.keep_s / 86400
        return (f"task {task_id} failed, but its call was dropped when the history "
                f"retention ({days:g} days, master --history) ran out: submit it again")
    if new_id in state.tasks or new_id in state.dead.letters \
            or state._has_result(outbox, new_id):
        return f"task id {new_id} is taken"
    if letter is not None:
        return ""
    rec = state.tasks.get(task_id)
    if rec is not None:
        return f"task {task_id} has not failed: it is {rec.state.value}"
    task = state.history.tasks.get(task_id)
    if task is not None and task.outcome == "ok":
        return f"task {task_id} succeeded: nothing to replay"
    if task is not None and task.outcome:
        return (f"task {task_id} ended {task.outcome}, not failed: only tasks that failed "
                f"for good can be replayed")
    return f"no failed task {task_id} on the master (see `taskq failed`)"
