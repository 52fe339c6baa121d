"""What the worker tells the master of each task it ran: a pool's ``Outcome`` as the
``ResultMsg`` of the task's attempt.

    Outcome DONE ── the run's status, body, detail (a body over the master's --max-payload
                    becomes a PayloadTooLarge error here, before it is sent)
    TIMED_OUT / died ── TIMEOUT / CRASHED, retried if the task's retry_on names the failure
    CANCELLED ── CANCELLED, never retried
"""

from __future__ import annotations

from typing import Any

from taskq import logs
from taskq.errors import PayloadTooLarge, TaskCrashed, TaskTimeout
from taskq.protocol import bodies
from taskq.protocol.messages import ResultMsg, Status
from taskq.protocol.options import retry_applies
from taskq.worker import execute
from taskq.worker.pools.job import Outcome, OutcomeKind

log = logs.get_logger("taskq.worker")


def of(outcome: Outcome, worker: str, max_payload: int, attempt: int,
       retry_on: tuple[str, ...], log: Any = log) -> ResultMsg:
    """The result of ``outcome`` on worker ``worker`` (its name), at ``attempt``; what went
    wrong is logged to ``log`` (the worker's, bound to its id)."""
    if outcome.kind is OutcomeKind.DONE:
        ran: execute.RunResult = outcome.value
        status, body, detail, retry = ran.status, ran.body, ran.detail, ran.retry
        if status is Status.UNLOADABLE:  # the master hands it to another worker
            log.warning("task_not_loadable", task_id=outcome.task_id,
                        reason=detail.partition("\n")[0])
        if body is not None and len(body) > max_payload:
            status, detail = Status.ERROR, ""
            body = bodies.encode_error(PayloadTooLarge(
                f"the task's result is {len(body)} bytes, over the master's --max-payload "
                f"of {max_payload} bytes; return a path or URL instead of the data"))
        return ResultMsg(outcome.task_id, status, body, detail, worker, outcome.duration,
                         retry, attempt)
    if outcome.kind is OutcomeKind.CANCELLED:
        return cancelled(outcome.task_id, outcome.detail, worker, attempt, outcome.duration)
    failure: type[Exception] = TaskTimeout
    if outcome.kind is OutcomeKind.TIMED_OUT:
        status, detail = Status.TIMEOUT, f"on worker {worker}: {outcome.detail}"
    else:
        status, failure = Status.CRASHED, TaskCrashed
        detail = f"the process running the task on worker {worker} died: {outcome.detail}"
    log.warning("task_failed", task_id=outcome.task_id, status=status.value,
                detail=outcome.detail)
    return ResultMsg(outcome.task_id, status, None, detail, worker, outcome.duration,
                     retry_applies(retry_on, failure), attempt)


def cancelled(task_id: str, how: str, worker: str, attempt: int,
              duration: float = 0.0) -> ResultMsg:
    return ResultMsg(task_id, Status.CANCELLED, None, f"on worker {worker}: {how}", worker,
                     duration, False, attempt)
