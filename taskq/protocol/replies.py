"""The messages only the master sends: a submitter's fetched results, what it tells a peer
that (re)connects, and the rows of ``taskq status`` and ``taskq queue list``.

Plain dataclasses, pickled by the master and loaded by clients, workers and the CLI with
plain ``pickle.loads``; the master never loads one, so none is in ``restricted.ALLOWED``
(a request naming one is refused). The messages a request may carry, and body encoding,
are in ``taskq.protocol.messages``::

    master ── fetch ────────────────────► Fetched [ResultMsg, ...], started, progress
    master ── hello / register / info ──► MasterInfo   (sizes the peer's frames: transport)
    master ── status ───────────────────► ClusterStatus [WorkerRow, ...] ──► taskq status
    master ── queues ───────────────────► [QueueRow, ...] ──────────────────► taskq queue list
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taskq.protocol.messages import ResultMsg


@dataclass(slots=True)
class Fetched:
    """What a submitter's fetch returns: results, and the tasks that started running."""

    results: list[ResultMsg] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    # the last progress of running tasks that changed since the last fetch:
    # task id -> (done, total, message), see taskq.worker.report
    progress: dict[str, tuple[float, float | None, str | None]] = field(default_factory=dict)


@dataclass(slots=True)
class QueueRow:
    """A queue for ``taskq queue list``: depth, running, and its limits (0: none)."""

    name: str
    depth: int
    running: int
    rate: float = 0.0
    concurrency: int = 0


@dataclass(slots=True)
class MasterInfo:
    """What the master tells a client or worker when it (re)connects."""

    max_payload: int
    lost_after: float
    heartbeat: float
    durable: bool


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
