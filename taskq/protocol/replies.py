"""The messages only the master sends: a submitter's fetched results, what it tells a peer
that (re)connects, and the rows of ``taskq status`` and ``taskq queue list``.

Plain dataclasses, pickled by the master and loaded by clients, workers and the CLI with
plain ``pickle.loads``; the master never loads one, so none is in ``restricted.ALLOWED``
(a request naming one is refused). The messages a request may carry, and body encoding,
are in ``taskq.protocol.messages``::

    master ── fetch ────────────────────► Fetched [ResultMsg, ...], started, progress
    master ── hello / register / info ──► MasterInfo   (sizes the peer's frames: transport)
    master ── report ───────────────────► Receipt      (which results are journaled yet)
    master ── status ───────────────────► ClusterStatus [WorkerRow, ...] ──► taskq status
    master ── queues ───────────────────► [QueueRow, ...] ──────────────────► taskq queue list
    master ── replay ───────────────────► [Replayed, ...] ─────► taskq replay, Client.replay
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from taskq.protocol.messages import ResultMsg, TaskMsg


@dataclass(slots=True)
class Fetched:
    """What a submitter's fetch returns: results, and the tasks that started running."""

    results: list[ResultMsg] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    # the last progress of running tasks that changed since the last fetch:
    # task id -> (done, total, message), see taskq.worker.report
    progress: dict[str, tuple[float, float | None, str | None]] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class Replayed:
    """What became of one task asked to be replayed: its new task, or why there is none."""

    task_id: str  # the task that failed
    new_id: str = ""  # the replay's task id ("": not replayed)
    error: str = ""  # why it was not replayed, one line
    task: TaskMsg | None = None  # the new task, when asked for (a client keeps it)


@dataclass(slots=True)
class QueueRow:
    """A queue for ``taskq queue list``: depth, running, and its limits (0: none)."""

    name: str
    depth: int
    running: int
    rate: float = 0.0
    concurrency: int = 0
    paused: bool = False  # it leases nothing until resumed (taskq queue resume)


@dataclass(slots=True)
class MasterInfo:
    """What the master tells a client or worker when it (re)connects."""

    max_payload: int
    lost_after: float
    heartbeat: float
    durable: bool
    epoch: str = ""  # this master run: a restarted master has another


@dataclass(slots=True, frozen=True)
class Receipt:
    """A worker's report taken: ``ticket`` is the journal position that makes its results
    durable (0: nothing to wait for, or a master without a journal), ``durable`` how far the
    journal has committed, both of master run ``epoch``. The worker keeps each result until
    a receipt of the same run says ``durable >= ticket``, and reports it again to a master
    of another run (``taskq.worker.acks``)."""

    epoch: str
    ticket: int
    durable: int


@dataclass(kw_only=True, slots=True)
class Leased:
    """A worker's poll answered: tasks leased to it, and cancel requests for it (``asks``,
    see ``taskq.protocol.messages.stop_ask``). ``ticket``: the journal position that makes
    these leases durable (0: they are, or the master keeps no journal); the worker starts
    none of them before the journal has them (``BrokerAPI.report`` with ``durable_to``).

    A poll renews the worker as a beat does, and its answer says what a beat's would
    (``Beaten``): ``beat``, the seconds within which the master must hear from the worker
    again (0: it does not know the worker, which must register again), and ``drain``. A
    worker that has run nothing yet is kept alive by its poll alone (one connection)."""

    tasks: list[TaskMsg]
    asks: list[str]
    ticket: int = 0
    beat: float = 0.0
    drain: bool = False


@dataclass(kw_only=True, slots=True)
class Beaten:
    """A worker's beat taken: the seconds until its next one (0: the master does not know
    it, it must register again), and ``send_held``: the master's digest of what it holds
    differs, so the worker sends the list (``BrokerAPI.heartbeat``)."""

    beat: float
    send_held: bool = False
    drain: bool = False  # an operator asked it to drain: it stops as on SIGTERM


@dataclass(slots=True)
class WorkerRow:
    """A worker in ``ClusterStatus``: what it runs and holds, and when it was last heard."""

    worker_id: str
    host: str
    pid: int
    procs: int
    busy: int
    held: int
    done: int
    failed: int
    seen_ago: float
    pool: str = "processes"
    resources: str = ""  # what it declared, e.g. "gpu=2,ram_gb=64"
    memory: int = 0  # resident bytes of the worker and its pool processes (0: unknown)
    draining: bool = False  # it is stopping: it takes nothing new


@dataclass(slots=True)
class ClusterStatus:
    """A snapshot for ``taskq status``."""

    workers: list[WorkerRow]
    pending: dict[str, int]
    leased: int
    done: int
    failed: int
    results_waiting: int
    uptime: float
    durable: bool
    waiting: int = 0  # tasks held back until a time (restored for their holders to claim)
    # queued tasks no connected worker could ever fit: "gpu=4" -> how many
    unfit: dict[str, int] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)  # open connections per key fingerprint
    blocked: int = 0  # tasks waiting for their dependencies to end
    # per queue: workers that would run all it could run now (taskq_desired_workers)
    desired: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CancelOutcome:
    """What became of each task a cancel named."""

    cancelled: list[str] = field(default_factory=list)  # it will never run
    running: list[str] = field(default_factory=list)  # it started: too late
    unknown: list[str] = field(default_factory=list)  # no such task, or it already ended
    asked: list[str] = field(default_factory=list)  # its worker is asked: call again
    # stopped even while it runs (a cancel with running=True): its worker is asked to stop it
    # and it ends CANCELLED (when the worker stopped it, or its lease expired)
    stopping: list[str] = field(default_factory=list)
    ended: dict[str, str] = field(default_factory=dict)  # it ended before: how (with running)


class ExplainKind(StrEnum):
    """Where a task is, as ``taskq explain`` names it."""

    UNKNOWN = "unknown"  # never submitted here, or ended and pruned from the history
    ENDED = "ended"
    JOINED = "joined"  # a submit that joined a live task with the same unique key
    DELAYED = "delayed"  # run_at / submit_after: not before its time
    RETRY_WAIT = "retry_wait"  # raised; waiting for its backoff before the next attempt
    RESTORED = "restored"  # held after a master restart for its holder to claim it
    WAITING_DEPS = "waiting_for_dependencies"  # futures among its arguments not ended yet
    NO_WORKER = "no_worker"  # queued where no worker serves
    LIMITED = "limited"  # queued, held by a rate, concurrency, key or resource limit
    QUEUED = "queued"  # queued, behind others or waiting for a free slot
    LEASED = "leased"  # handed to a worker, not begun
    RUNNING = "running"


@dataclass(slots=True)
class Explanation:
    """The answer: a kind, a one-line summary, every reason that applies in order, and
    the facts behind them."""

    task_id: str
    kind: ExplainKind
    summary: str
    reasons: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResultState(StrEnum):
    """What the master says of a task id a reader asks for (``result_states``)."""

    RUNNING = "running"  # not ended yet: queued, waiting, blocked or running
    KEPT = "kept"  # ended, and its result is held (kept for its TTL, or not fetched yet)
    EXPIRED = "expired"  # ended, and its result_ttl passed
    UNKNOWN = "unknown"  # never seen, or ended with no TTL and fetched, or long forgotten


# The detail of a REFUSED outcome that names a task whose kept result expired (a reader's
# future arrived just after it did): the client raises ``taskq.ResultExpired`` for it.
EXPIRED_DETAIL = "result expired"
