"""Callbacks: the task the master makes when a task with ``on_failure`` or ``on_success``
ended, and how its arguments carry the ended task's outcome without the master reading it.

    client   task(fn, on_failure=h) ── h encoded (bodies.encode_function) ──► TaskOptions
    master   the task ended for good ── callback_msg ──► TaskMsg "<id>:on_failure"
                fn = the encoded h; args = pickle of ((task id, _Outcome), {}) where
                _Outcome holds the result's status, body bytes (as they came) and detail
    worker   decode_args ── unpickles _outcome(status, body, detail) ──► the value, or
                the exception (``bodies.decode_result``): h(task_id, value_or_exception)

The master pickles only plain values and a reference to ``_outcome``; it never unpickles
the body it splices in.
"""

from __future__ import annotations

import pickle
from typing import Any

from taskq.protocol.messages import PICKLE_PROTOCOL, ResultMsg, Status, TaskMsg, TaskOptions

ON_FAILURE = "on_failure"
ON_SUCCESS = "on_success"


class _Outcome:
    """An ended task's result as it is pickled into its callback's arguments."""

    __slots__ = ("body", "detail", "status")

    def __init__(self, status: str, body: bytes | None, detail: str) -> None:
        self.status, self.body, self.detail = status, body, detail

    def __reduce__(self) -> tuple[Any, ...]:
        return _outcome, (self.status, self.body, self.detail)


def _outcome(status: str, body: bytes | None, detail: str) -> Any:
    """In the callback's pool process: the ended task's value, or its exception."""
    from taskq.protocol import bodies  # the worker's side only; the master never calls this

    try:
        return bodies.decode_result(ResultMsg("", Status(status), body, detail))
    except BaseException as exc:  # the outcome is the exception, handed over as a value
        return exc


def callback_of(msg: TaskMsg, result: ResultMsg) -> tuple[str, bytes] | None:
    """(which, encoded function) of the callback a task's end calls for, if any: on_success
    after OK, on_failure after any other end but a cancel."""
    options = msg.options
    if result.status is Status.OK:
        return (ON_SUCCESS, options.on_success) if options.on_success else None
    if result.status is Status.CANCELLED or not options.on_failure:
        return None
    return ON_FAILURE, options.on_failure


def callback_msg(msg: TaskMsg, result: ResultMsg, outbox: str) -> TaskMsg | None:
    """The task that runs ``msg``'s callback for ``result`` (None: it has none). Its id is
    derived from the ended task's, so one end can never make two callbacks."""
    found = callback_of(msg, result)
    if found is None:
        return None
    which, fn = found
    body = None if result.body is None else bytes(result.body)
    args = pickle.dumps(((msg.task_id, _Outcome(result.status.value, body, result.detail)),
                         {}), protocol=PICKLE_PROTOCOL)
    options = TaskOptions(queue=msg.options.queue, priority=msg.options.priority)
    return TaskMsg(f"{msg.task_id}:{which}", outbox, fn, args, options)
