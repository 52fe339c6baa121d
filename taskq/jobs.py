"""Named jobs for the command line: submit by ``MODULE:FUNC``, collect results later.

A job is an outbox on the master named ``job:NAME``: results wait there (journaled) until
``taskq results NAME`` fetches and acknowledges them, from any host, at any later time.

    taskq submit mod:fn 1 2 --job J ──► TaskMsg(outbox="job:J", fn=CallByName("mod", "fn"))
    taskq results J [--wait]        ──► fetch("job:J") ... ack
"""

from __future__ import annotations

import importlib
import json
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from taskq import defaults, wire
from taskq.errors import TaskLoadError
from taskq.transport import Link
from taskq.wire import ResultMsg, Status, TaskMsg, TaskOptions


class CallByName:
    """A function named by module and attribute, imported where it runs."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            target: Any = importlib.import_module(self.module)
        except ImportError as exc:
            raise TaskLoadError(f"the worker on {socket.gethostname()} could not import "
                                f"module {self.module!r}: {exc}") from None
        for part in self.name.split("."):
            target = getattr(target, part)
        return target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.module}:{self.name}"


def parse_target(text: str) -> CallByName:
    module, sep, name = text.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"bad target {text!r}: expected MODULE:FUNC, e.g. mypkg.tasks:resize")
    return CallByName(module, name)


def parse_arg(text: str) -> Any:
    """A JSON literal where the text is one ("3", "[1, 2]", "null"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def outbox_of(job: str) -> str:
    return f"job:{job}"


def new_job_name() -> str:
    return uuid.uuid4().hex[:12]


def submit(link: Link, job: str, target: str, args: list[str], options: TaskOptions) -> str:
    """Submit one task to a job; returns its task id."""
    fn = parse_target(target)
    msg = TaskMsg(f"{job}-{uuid.uuid4().hex[:12]}", outbox_of(job), wire.encode_function(fn),
                  wire.encode_args(tuple(parse_arg(a) for a in args), {}), options)
    if link.call("submit", [msg], True) != 1:  # journaled before this command exits
        raise RuntimeError(f"the master did not accept task {msg.task_id}")
    return msg.task_id


@dataclass(slots=True)
class JobResult:
    task_id: str
    status: Status
    value: Any = None
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        value = self.value
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        return {"task_id": self.task_id, "status": self.status.value, "value": value,
                "error": self.error}


def _decode(result: ResultMsg) -> JobResult:
    try:
        return JobResult(result.task_id, result.status, wire.decode_result(result))
    except BaseException as exc:  # the task's own exception, shown as text
        return JobResult(result.task_id, result.status, error=f"{type(exc).__name__}: {exc}")


def collect(link: Link, job: str, wait: bool, timeout: float | None) -> tuple[list[JobResult], int]:
    """Fetch (and acknowledge) a job's results; with wait, until none is still open.

    Returns the results and how many tasks of the job are still open.
    """
    outbox = outbox_of(job)
    deadline = None if timeout is None else time.monotonic() + timeout
    got: list[ResultMsg] = []
    ack: list[str] = []
    still_open: int | None = None  # set once the collecting is over
    while True:
        batch = link.call("fetch", outbox, ack, defaults.RESULT_BATCH, 0)
        ack = [r.task_id for r in batch]
        got.extend(batch)
        if batch:
            continue
        if still_open is not None:
            return [_decode(r) for r in got], still_open
        count: int = link.call("open_count", outbox)
        out_of_time = deadline is not None and time.monotonic() >= deadline
        if not wait or count == 0 or out_of_time:
            still_open = count  # and fetch once more: tasks may have ended since the fetch
            continue
        batch = link.call("fetch", outbox, [], defaults.RESULT_BATCH, defaults.LONG_POLL_S)
        ack = [r.task_id for r in batch]
        got.extend(batch)
