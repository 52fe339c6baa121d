"""Named jobs for the command line: submit by ``MODULE:FUNC``, collect results later.

A job is an outbox on the master named ``job:NAME``: results wait there (journaled) until
``taskq results NAME`` has written them out, from any host, at any later time.

    taskq submit mod:fn 1 2 --job J ──► TaskMsg(outbox="job:J", fn=CallByName("mod", "fn"))
    taskq submit mod:fn --batch F   ──► one TaskMsg a line, up to SUBMIT_BATCH a submit call
    taskq results J [--wait]        ──► hello("job:J"): what was sent but never acknowledged
                                        comes again
                                        fetch(ack=[])      ──► batch 1 ──► written, flushed
                                        fetch(ack=batch 1) ──► batch 2 ──► written, flushed
                                        ... fetch(ack=batch n) ──► none: open_count("job:J")

A result leaves the master only after it was written out (acknowledged in the fetch after
the one that brought it), so a collector stopped at any moment (a signal, a closed pipe, a
lost connection) leaves every result it did not write for the next ``taskq results``; that
one may repeat the last batch written, never skips one. A write that fails part way through
a batch says how many of its results were taken (``OutputLost.taken``): those alone are
acknowledged. A peek (``consume=False``) acknowledges nothing and, as it ends, has the
master send again everything it was sent.
"""

from __future__ import annotations

import importlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from taskq import defaults
from taskq.errors import TaskLoadError, TaskqError
from taskq.protocol import bodies, names
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import ResultMsg, Schedule, Status, TaskMsg, TaskOptions
from taskq.protocol.options import check, parse_duration


class NoSuchJob(TaskqError):
    """The master knows no job by that name (never submitted, or collected long ago)."""


class OutputLost(TaskqError):
    """Results could not be written out (e.g. stdout was closed); they stay on the master,
    but for the first ``taken`` of the batch being written, which the reader has."""

    def __init__(self, message: str, taken: int = 0) -> None:
        super().__init__(message)
        self.taken = taken


class CallByName:
    """A function named by module and attribute, imported where it runs."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            target = self.__taskq_resolve__()
        except ImportError as exc:
            raise TaskLoadError(f"the worker on {socket.gethostname()} could not import "
                                f"module {self.module!r}: {exc}") from None
        return target(*args, **kwargs)

    def __taskq_resolve__(self) -> Any:
        """The function itself, imported: a worker loads it so before the task runs, and a
        worker where the module does not import hands the task to another."""
        target: Any = importlib.import_module(self.module)
        for part in self.name.split("."):
            target = getattr(target, part)
        return target

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


def submit(remote: BrokerAPI, job: str, target: str, args: list[str],
           options: TaskOptions) -> str:
    """Submit one task to a job; returns its task id once the master has journaled it
    (while the master's queue is full, this waits for room as every submitter does)."""
    return submit_many(remote, job, target, [args], options)[0]


def submit_many(remote: BrokerAPI, job: str, target: str, arg_lists: list[list[str]],
                options: TaskOptions) -> list[str]:
    """Submit one task per list of arguments to a job, in batches of up to
    ``defaults.SUBMIT_BATCH`` a call over the same link; returns their task ids once the
    master has journaled them all (waiting for room in its queue as every submitter does)."""
    fn = bodies.encode_function(parse_target(target))
    prefix = names.task_prefix(outbox_of(job))
    msgs = [TaskMsg(f"{prefix}{uuid.uuid4().hex[:12]}", outbox_of(job), fn,
                    bodies.encode_args(tuple(parse_arg(a) for a in args), {}), options)
            for args in arg_lists]
    for batch in _batches(msgs):
        while batch:  # the master takes a front part while it has room; each call is bounded
            batch = batch[remote.submit(batch, durable=True):]
    return [msg.task_id for msg in msgs]


def _batches(msgs: list[TaskMsg]) -> Iterator[list[TaskMsg]]:
    """Runs of at most ``SUBMIT_BATCH`` tasks and about ``BATCH_BYTES``, as a Client sends."""
    batch: list[TaskMsg] = []
    size = 0
    for msg in msgs:
        if batch and (len(batch) >= defaults.SUBMIT_BATCH or size >= defaults.BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(msg)
        size += msg.size
    if batch:
        yield batch


def schedule_spec(name: str, target: str, args: list[str], options: TaskOptions, cron: str,
                  every: str, tz: str, catch_up: str) -> Schedule:
    """A schedule of ``MODULE:FUNC ARGS`` for ``taskq schedule add``; ValueError if bad."""
    fn = parse_target(target)
    spec = Schedule(name, bodies.encode_function(fn),
                    bodies.encode_args(tuple(parse_arg(a) for a in args), {}), options, cron,
                    parse_duration(every) if every else 0.0, tz, catch_up)
    check(spec)
    return spec


@dataclass(slots=True)
class JobResult:
    """One task's outcome as ``taskq results`` shows it: the value, or the error as text."""

    task_id: str
    status: Status
    value: Any = None
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is not Status.OK or bool(self.error)

    def as_json(self) -> dict[str, Any]:
        value = self.value
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        return {"task_id": self.task_id, "status": self.status.value, "value": value,
                "error": self.error}

    def as_line(self) -> str:
        """TASK_ID<tab>STATUS<tab>repr(value) or the error, on one line."""
        shown = self.error.replace("\n", "\\n") if self.error else repr(self.value)
        return f"{self.task_id}\t{self.status.value}\t{shown}"


def _decode(result: ResultMsg) -> JobResult:
    if result.status is Status.ERROR and result.body is not None:
        return _failed(result, bodies.decode_error(bytes(result.body)))  # the task's own
    try:
        return JobResult(result.task_id, result.status, bodies.decode_result(result))
    except Exception as exc:  # how the task failed, or a value that does not unpickle here
        return _failed(result, exc)


def _failed(result: ResultMsg, exc: BaseException) -> JobResult:
    return JobResult(result.task_id, result.status, error=f"{type(exc).__name__}: {exc}")


Write = Callable[[list[JobResult]], None]


class Printer:
    """A ``Write`` for ``collect``: each batch goes to a stream one line per result (text,
    or a JSON object with ``as_json``) and is flushed before it returns; counts what it
    wrote. ``OutputLost`` if the stream cannot be written.

    With ``taken`` (a reader at the other end of a pipe), lines are written one at a time
    and each counts as written once ``taken()`` says the reader took it: False (the reader
    left without it) stops the batch there, with ``OutputLost``."""

    def __init__(self, stream: TextIO, as_json: bool = False,
                 taken: Callable[[], bool] | None = None) -> None:
        self.stream = stream
        self.as_json = as_json
        self.taken = taken
        self.written = 0
        self.failed = 0

    def __call__(self, batch: list[JobResult]) -> None:
        lines = [f"{json.dumps(r.as_json()) if self.as_json else r.as_line()}\n" for r in batch]
        chunks = [lines] if self.taken is None else [[line] for line in lines]
        done = 0
        for chunk in chunks:
            try:
                self.stream.write("".join(chunk))
                self.stream.flush()
            except OSError as exc:
                raise self._lost(batch[:done], exc.strerror or str(exc)) from None
            if self.taken is not None and not self.taken():
                raise self._lost(batch[:done], "the reader left")
            done += len(chunk)
        self._count(batch)

    def _count(self, results: list[JobResult]) -> None:
        self.written += len(results)
        self.failed += sum(r.failed for r in results)

    def _lost(self, taken: list[JobResult], why: str) -> OutputLost:
        self._count(taken)
        return OutputLost(f"could not write the results ({why}); those not written stay on "
                          f"the master", taken=len(taken))

    def summary(self, still_open: int) -> str:
        return (f"{self.written} result(s), {self.failed} failed; {still_open} task(s) "
                f"still open")


def collect(remote: BrokerAPI, job: str, wait: bool, timeout: float | None, write: Write,
            on_progress: Callable[[dict[str, Any]], None] | None = None, *,
            consume: bool = True) -> int:
    """Hand a job's results to ``write`` batch by batch as they arrive; a batch is
    acknowledged (and so removed from the master) only after ``write`` returned. With
    wait, go on until no task of the job is open or ``timeout`` seconds passed. The
    progress of running tasks (``taskq.report_progress``) goes to ``on_progress``.
    Without ``consume``, nothing is acknowledged: every result stays on the master.

    Returns how many tasks of the job are still open; ``NoSuchJob`` if the master knows
    no such job. Whatever ``write`` raises stops the collecting, its batch unacknowledged
    (but for the results an ``OutputLost`` says were taken).
    """
    outbox = outbox_of(job)
    deadline = None if timeout is None else time.monotonic() + timeout
    ack: list[str] = []
    poll = 0.0
    still_open: int | None = None  # once set, one last fetch: tasks may have ended since
    wrote_any = False
    while True:
        fetched = remote.fetch(outbox, ack, max_n=defaults.RESULT_BATCH, wait=poll)
        batch = fetched.results
        ack, poll = [], 0.0
        if on_progress is not None and getattr(fetched, "progress", None):
            on_progress(fetched.progress)
        if batch:
            ack = _write(remote, outbox, write, batch, consume)
            still_open, wrote_any = None, True
            continue
        if still_open is not None:
            if not consume:  # what this peek was sent is sent again to the next collector
                remote.hello(outbox)
            return still_open
        count = remote.open_count(outbox)
        if count is None and not wrote_any:  # (after writing some: collected to the end)
            raise NoSuchJob(f"no job named {job}")
        left = _time_left(deadline)
        if not wait or not count or left <= 0:
            still_open = count or 0
            if consume:  # results a consumer that died was sent (its long-poll outlived
                remote.hello(outbox)  # it) are sent again: the last fetch misses none
        else:
            poll = min(defaults.LONG_POLL_S, left)


def _write(remote: BrokerAPI, outbox: str, write: Write, batch: list[ResultMsg],
           consume: bool) -> list[str]:
    """Write a batch; returns the ids to acknowledge. If the output is lost part way, the
    results it took are acknowledged at once before ``OutputLost`` goes on."""
    ids = [r.task_id for r in batch] if consume else []
    try:
        write([_decode(r) for r in batch])
    except OutputLost as lost:
        if lost.taken and ids:
            remote.fetch(outbox, ids[:lost.taken], max_n=0, wait=0.0)
        raise
    return ids


def _time_left(deadline: float | None) -> float:
    return float("inf") if deadline is None else deadline - time.monotonic()
