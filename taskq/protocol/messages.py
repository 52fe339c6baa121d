"""The messages that cross a process boundary: tasks, results, schedules, a worker's hello
and its beat, and the statuses a task goes through (dataclasses and ``str`` enums).

The master reads messages but never the bodies inside them: a task's function and arguments
and a result's value are opaque ``bytes`` to it, encoded and decoded by
``taskq.protocol.bodies`` on the client and in a worker's pool process. Large bodies are
pickled out of band (``taskq.protocol.frames`` sends them without a copy). The messages
only the master sends (fetched results, ``MasterInfo``, status rows) are in
``taskq.protocol.replies``.
"""

from __future__ import annotations

import base64
import pickle
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from taskq.protocol import frames

PICKLE_PROTOCOL = 5  # out-of-band capable; keeps large bytes/bytearray/memoryview args cheap


class Status(StrEnum):
    """How a task ended, as its submitter sees it."""

    OK = "ok"  # returned; body is the pickled value
    ERROR = "error"  # raised; body is the pickled exception
    CRASHED = "crashed"  # the pool process died; detail says how
    TIMEOUT = "timeout"  # ran past its timeout; detail says which
    LOST = "lost"  # every worker it was given to was lost; detail counts them
    REFUSED = "refused"  # the master would not accept it; detail says why
    CANCELLED = "cancelled"  # removed before it started, or stopped while it ran
    # a dependency did not end OK, so it never ran; body: deps.failure_body
    DEPENDENCY_FAILED = "dependency_failed"
    # the worker could not load it (its module does not import there), so it did not run:
    # from a worker, the master hands it to another; from the master, no worker could
    UNLOADABLE = "unloadable"
    # it did not start by its expiry deadline (``TaskOptions.expires``), so it never ran
    EXPIRED = "expired"


_STATUSES: dict[str, Status] = {s.value: s for s in Status}


class TaskState(StrEnum):
    """Where a task is inside the master."""

    WAITING = "waiting"  # not to be leased before its time (restored, held for its holder)
    BLOCKED = "blocked"  # waiting for its dependencies to end (taskq.master.state.deps)
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"


# An encoded body: bytes, or a read-only view into the buffer it was received in.
Body = bytes | memoryview


def _body(data: Body, protocol: int) -> Any:
    """A body as pickled in a message: large ones as out-of-band buffers where the protocol
    has them, so ``taskq.protocol.frames`` sends them without a copy."""
    if protocol >= 5 and len(data) >= frames.OUT_OF_BAND_MIN:
        return pickle.PickleBuffer(data)
    return data


@dataclass(slots=True)
class TaskOptions:
    """Per-task options, plain values the master may read (never user code)."""

    timeout: float | None = None
    retries: int = 0
    priority: int = 0
    queue: str = "default"
    # failures that are retried, as "module:qualname" of exception types; () = any exception
    # the task raised (a pool process checks isinstance; the master never loads them)
    retry_on: tuple[str, ...] = ()
    backoff: float = 0.0  # seconds before the first retry, doubling for each next one
    max_backoff: float = 60.0
    jitter: bool = True  # full jitter: each delay drawn uniformly from [0, the delay]
    run_at: float = 0.0  # wall-clock time (epoch seconds) before which it does not start
    limit_key: str = ""  # at most ``limit`` tasks with this key run at once, cluster-wide
    limit: int = 0
    unique: str = ""  # while a task with this key lives, a submit with it joins that task
    unique_for: float = 0.0  # ... and for this long after it ended
    # sorted (name, amount) pairs it holds on its worker while it runs, e.g. (("gpu", 1.0),)
    resources: tuple[tuple[str, float], ...] = ()
    expires: float = 0.0  # seconds after its submit by which it must start (0: no limit)
    # that deadline as wall-clock epoch seconds, set by the master when it accepts the task
    # (journaled with it; a worker does not start it later: taskq.worker.execute)
    expires_at: float = 0.0
    soft_timeout: float | None = None  # taskq.SoftTimeout is raised in it after this long
    # W3C traceparents (``taskq.tracing``; "" untraced): the span that submitted it, and the
    # span of its attempt before this one (set by the master on a retry, for a span link)
    trace: str = ""
    trace_prev: str = ""
    # seconds its result is kept for reading by id after it ended (``Client.future``,
    # ``taskq result``); None: the master's --result-ttl; 0: not kept
    result_ttl: float | None = None
    # encoded functions the master runs as a task when this one ended for good: on_failure
    # (not OK, not cancelled) with (task id, its exception), on_success with (task id, value)
    on_failure: bytes = b""
    on_success: bytes = b""
    # dependencies whose failure is handed to this task as the exception, instead of failing it
    allow_failed: tuple[str, ...] = ()
    parent: str = ""  # the task that submitted it (``taskq.current_client()``), if any

    def __reduce__(self) -> str | tuple[Any, ...]:
        if self is DEFAULT_OPTIONS:  # most tasks: a name, the very object once loaded
            return "DEFAULT_OPTIONS"
        # its values in field order: the smallest pickle, read back by the constructor
        return (TaskOptions, tuple(getattr(self, name) for name in _OPTION_FIELDS))

    def extra(self) -> dict[str, Any]:
        """The options beyond the first four that differ from their defaults (journal)."""
        out: dict[str, Any] = {}
        for name in _OPTION_FIELDS[4:]:
            value = getattr(self, name)
            if value != getattr(DEFAULT_OPTIONS, name):
                out[name] = list(value) if isinstance(value, tuple) else \
                    base64.b64encode(value).decode() if isinstance(value, bytes) else value
        return out

    @classmethod
    def with_extra(cls, timeout: float | None, retries: int, priority: int, queue: str,
                   extra: dict[str, Any]) -> TaskOptions:
        if "retry_on" in extra:
            extra = {**extra, "retry_on": tuple(extra["retry_on"])}
        for name in _BYTES_OPTIONS:
            if name in extra:
                extra = {**extra, name: base64.b64decode(extra[name])}
        if "allow_failed" in extra:
            extra = {**extra, "allow_failed": tuple(extra["allow_failed"])}
        if "resources" in extra:
            extra = {**extra, "resources": tuple((str(n), float(a))
                                                 for n, a in extra["resources"])}
        return cls(timeout=timeout, retries=retries, priority=priority, queue=queue, **extra)


_OPTION_FIELDS = tuple(f.name for f in fields(TaskOptions))
_BYTES_OPTIONS = ("on_failure", "on_success")  # base64 in the journal's JSON


DEFAULT_OPTIONS = TaskOptions()


@dataclass(slots=True)
class TaskMsg:
    """A task: who wants the result (``outbox``), and the opaque function and arguments."""

    task_id: str
    outbox: str
    fn: bytes
    args: Body
    options: TaskOptions = field(default_factory=TaskOptions)
    attempt: int = 0  # how many times it was handed out before (set by the master)
    deps: tuple[str, ...] = ()  # ids of the tasks whose results are among its arguments
    # set by the master in a lease: (dependency id, its result body) for each of ``deps``
    inputs: tuple[tuple[str, Body], ...] = ()

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        inputs = tuple((d, _body(b, protocol)) for d, b in self.inputs)
        return (TaskMsg, (self.task_id, self.outbox, self.fn, _body(self.args, protocol),
                          self.options, self.attempt, self.deps, inputs))

    @property
    def size(self) -> int:
        size = len(self.fn) + len(self.args)
        return size + sum(len(b) for _, b in self.inputs) if self.inputs else size


MIRROR_FN = b""  # a TaskMsg with no function runs nowhere: it ends with a copy of its one
# dependency's result (``Client.future`` of another submitter's task)


@dataclass(slots=True)
class ResultMsg:
    """A task's outcome: ``body`` is opaque bytes for OK/ERROR, ``detail`` text otherwise."""

    task_id: str
    status: Status
    body: Body | None = None
    detail: str = ""
    worker: str = ""  # "host:pid" of the worker that produced it, if any
    duration: float = 0.0
    retry: bool | None = None  # may it be retried (retry_on)? None: only if it raised
    attempt: int = 0  # the TaskMsg.attempt it is the outcome of (a re-sent report's check)
    trace: str = ""  # W3C traceparent of the worker's span of this attempt ("" untraced)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        body = None if self.body is None else _body(self.body, protocol)
        return (ResultMsg, (self.task_id, self.status.value, body, self.detail,
                            self.worker, self.duration, self.retry, self.attempt,
                            self.trace))

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):  # unpickled: its value (a dict is quicker)
            status = _STATUSES.get(self.status)
            self.status = Status(self.status) if status is None else status

    @property
    def failed(self) -> bool:
        return self.status is not Status.OK

    @property
    def retryable(self) -> bool:
        return self.status is Status.ERROR if self.retry is None else self.retry


# A cancel request the master hands a worker (in its poll) is a task id: drop that task if
# it has not begun. A request to stop it even while it runs is the id behind this mark (task
# ids start with their outbox's public name, never with it); a worker that knows no such
# request only fails to drop an unknown task, and the master still ends the task CANCELLED.
STOP_MARK = "!"


def stop_ask(task_id: str) -> str:
    """The control request that stops a task wherever it is (running or not)."""
    return STOP_MARK + task_id


def parse_ask(ask: str) -> tuple[str, bool]:
    """A control request as (task id, stop it even while it runs)."""
    return (ask[1:], True) if ask.startswith(STOP_MARK) else (ask, False)


SCHEDULE_PREFIX = "schedule:"  # a schedule's runs are the job "schedule:NAME"


@dataclass(slots=True)
class Schedule:
    """A schedule as the master keeps (and journals) it."""

    name: str
    fn: bytes
    args: bytes
    options: TaskOptions = field(default_factory=TaskOptions)
    cron: str = ""  # a cron expression, or "" with ``every``
    every: float = 0.0  # seconds between runs, or 0 with ``cron``
    tz: str = "UTC"
    catch_up: str = "once"
    paused: bool = False
    next_run: float = 0.0  # wall-clock epoch seconds
    last_run: float = 0.0
    last_task: str = ""
    last_outcome: str = ""  # the Status of its last run that ended ("" none yet)

    @property
    def job(self) -> str:
        return f"{SCHEDULE_PREFIX}{self.name}"

    @property
    def outbox(self) -> str:
        return f"job:{self.job}"


@dataclass(slots=True)
class WorkerHello:
    """What a worker tells the master when it (re)connects."""

    worker_id: str
    host: str
    pid: int
    procs: int
    queues: tuple[str, ...] = ("default",)
    pool: str = "processes"  # processes, threads or asyncio; procs is its concurrency
    resources: tuple[tuple[str, float], ...] = ()  # what it has, e.g. (("gpu", 2.0),)
    draining: bool = False  # it is stopping (told to drain, or signalled): lease it nothing


@dataclass(kw_only=True, slots=True)
class Beat:
    """A worker's word that it lives (``BrokerAPI.beat``, every heartbeat interval): what
    it holds as a digest (``held_digest``; the list itself goes only on a join, or when the
    master's digest differs), how many tasks run, its memory, and the progress its tasks
    reported since the last beat."""

    held: int
    running: int
    memory: int = 0  # resident bytes of the worker and its pool (0: unknown)
    progress: dict[str, Any] | None = None  # task id -> (done, total, message)


def check_vitals(memory: object, progress: object) -> None:
    """ValueError unless ``memory`` is resident bytes and ``progress`` a dict or None (the
    master checks what every heartbeat and beat says of a worker)."""
    if type(memory) is not int or memory < 0:
        raise ValueError(f"bad memory {memory!r}: expected resident bytes, an int >= 0")
    if progress is not None and type(progress) is not dict:
        raise ValueError(f"bad progress {type(progress).__name__}: expected a dict of "
                         f"task id -> (done, total, message)")


def check_beat(beat: object) -> None:
    """ValueError unless ``beat`` is a well-formed Beat."""
    if type(beat) is not Beat:
        raise ValueError(f"bad beat: expected a Beat, not {type(beat).__name__}")
    if type(beat.held) is not int or type(beat.running) is not int:
        raise ValueError("bad beat: held (a digest) and running must be ints")
    check_vitals(beat.memory, beat.progress)


def held_digest(task_ids: Iterable[str]) -> int:
    """A digest of a set of task ids that does not depend on their order (nor on the
    process: no ``hash()``): their count, and the XOR of their CRC-32s."""
    count = mixed = 0
    for task_id in task_ids:
        count += 1
        mixed ^= zlib.crc32(task_id.encode("utf-8", "surrogateescape"))
    return count << 32 | mixed


# --------------------------------------------------------------------------- encoding


