"""Who may reach what on the master: names held as secrets, and the public names they give.

Every peer of a master holds the same authkey, so the key alone cannot tell one client or
worker from another. What does is a name only its owner knows: a client's outbox is
``client-`` and 128 random bits, a worker's id ends in 128 random bits (a named job is the
name the user gives it, its own public name: whoever names a job reaches it, as ``taskq
results`` and schedules do). Peers send that name (the *claim*) with every call; the master
keys the outbox or worker by a digest of it (its *public name*), and only the public name
ever leaves the master or its owner (task messages handed to workers, task ids, status)::

    client  claim "client-9f…"  ── hello / submit / fetch / cancel ──► Owned ── outbox_name ──►
    worker  claim "h-12-3a…"    ── register / take / report …    ──►        "client-5be…"
                                                                     Broker (state keyed by
                                                                     public names)

So a peer reaches an outbox only if it holds its claim: its own futures, or a job it names
explicitly; a worker acts as a worker only if it holds that worker's claim. Task ids live
under their owner's public name (``<public name>-…``): ``submit`` refuses any other, so
no peer can take a task id from its owner, and ``cancel`` reaches only the caller's tasks.
An operator's ``cancel_tasks`` (``taskq cancel``) is the exception, as ``queue set`` or
``schedule remove`` are: any holder of the key may end any task by its id, or every open task
of a job by its name; it never reads a result, nor acts as the task's owner otherwise, and
the master logs each one (``tasks_cancelled_by_operator``).
A report for a task not leased to that worker is dropped by the broker (``report``).
The digest is deterministic, so a restarted master finds its journaled outboxes again.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskq import logs
from taskq.defaults import CLIENT_OUTBOX_PREFIX, JOB_OUTBOX_PREFIX
from taskq.master.state import CancelOutcome
from taskq.protocol.messages import MIRROR_FN, ResultMsg, TaskMsg, WorkerHello
from taskq.protocol.replies import ClusterStatus, Fetched, MasterInfo

if TYPE_CHECKING:
    from taskq.master.broker import Broker

log = logs.get_logger(__name__)

DIGEST_HEX = 32  # 128 bits: a public name does not collide and gives its claim away to no one
WORKER_DIGEST_HEX = 12  # after the worker's host and pid: unique per host and pid
MAX_NAME = 512  # a claim longer than this is refused (names are short: ids, job names)


class NotYours(ValueError):
    """A call named something its caller does not own (sent back as MasterError)."""


@functools.lru_cache(maxsize=4096)  # a few claims make every call: hash each once
def _digest(claim: str, size: int) -> str:
    return hashlib.sha256(claim.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def _checked(claim: Any, what: str) -> str:
    if type(claim) is not str or not claim or len(claim) > MAX_NAME:
        raise NotYours(f"{what} must be a non-empty string of at most {MAX_NAME} characters")
    return claim


def outbox_name(claim: str) -> str:
    """The public name of the outbox whose owner holds ``claim`` (its kind kept in front).
    A named job's outbox is its name: whoever names a job reaches it (``taskq results``,
    a schedule's runs), so there is no secret to keep."""
    if claim.startswith(JOB_OUTBOX_PREFIX):
        return claim
    kind = CLIENT_OUTBOX_PREFIX if claim.startswith(CLIENT_OUTBOX_PREFIX) else "box-"
    return kind + _digest(claim, DIGEST_HEX)


def worker_name(claim: str) -> str:
    """The public id of the worker holding ``claim`` ("host-pid-secret" -> "host-pid-digest")."""
    head = claim.rsplit("-", 1)[0] if "-" in claim else "worker"
    return f"{head}-{_digest(claim, WORKER_DIGEST_HEX)}"


def new_client_claim() -> str:
    return f"{CLIENT_OUTBOX_PREFIX}{secrets.token_hex(16)}"


def new_worker_claim(host: str, pid: int) -> str:
    return f"{host}-{pid}-{secrets.token_hex(16)}"


def task_prefix(outbox_claim: str) -> str:
    """What every task id of this outbox starts with."""
    return outbox_name(outbox_claim) + "-"


class Owned:
    """The broker as peers reach it: each claim turned into its public name, each task id
    and report checked against its owner. Mirrors ``taskq.protocol.api.Remote``."""

    def __init__(self, broker: Broker,
                 keys_in_use: Callable[[], dict[str, int]] | None = None) -> None:
        self._broker = broker
        self._keys_in_use = keys_in_use

    def _box(self, claim: Any) -> str:
        return outbox_name(_checked(claim, "an outbox"))

    def _worker(self, claim: Any) -> str:
        return worker_name(_checked(claim, "a worker id"))

    # ------------------------------------------------------------------ submitters

    def hello(self, outbox: str, ended: list[str] | None = None) -> MasterInfo:
        box = self._box(outbox)
        return self._broker.hello(box, _own_ids(box, ended or []))

    def submit(self, tasks: list[TaskMsg], durable: bool = True) -> int:
        for msg in tasks:
            if type(msg) is not TaskMsg:
                raise NotYours(f"submit takes task messages, not {type(msg).__name__}")
            box = self._box(msg.outbox)
            if type(msg.task_id) is not str or not msg.task_id.startswith(box + "-"):
                log.warning("task_refused", outbox=box, reason="task id outside its outbox")
                raise NotYours(f"task id {str(msg.task_id)[:80]!r} does not belong to its "
                               f"outbox (task ids start with the outbox's public name)")
            msg.outbox = box
            _check_deps(msg)
        return self._broker.submit(tasks, durable)

    def fetch(self, outbox: str, ack: list[str], max_n: int, wait: float) -> Fetched:
        return self._broker.fetch(self._box(outbox), ack, max_n, wait)

    def open_count(self, outbox: str) -> int | None:
        return self._broker.open_count(self._box(outbox))

    def known(self, task_ids: list[str]) -> list[str]:
        if type(task_ids) is not list:
            raise NotYours("task ids must be a list of strings")
        return self._broker.known([t for t in task_ids if type(t) is str])

    def cancel(self, task_ids: list[str], wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome:
        box = self._box(outbox)
        mine = _own_ids(box, task_ids)
        out = self._broker.cancel(mine, wait, box, running is True)
        kept = set(mine)
        out.unknown.extend(t for t in task_ids if t not in kept)
        return out

    # ------------------------------------------------------------------ workers

    def register(self, hello: WorkerHello) -> MasterInfo:
        if type(hello) is not WorkerHello:
            raise NotYours(f"register takes a WorkerHello, not {type(hello).__name__}")
        hello.worker_id = self._worker(hello.worker_id)
        return self._broker.register(hello)

    def heartbeat(self, worker_id: str, held: list[str], running: int,
                  memory: int = 0, progress: dict[str, Any] | None = None) -> bool:
        return self._broker.heartbeat(self._worker(worker_id), held, running, memory,
                                      progress)

    def take(self, worker_id: str, n: int, wait: float) -> list[TaskMsg]:
        return self._broker.take(self._worker(worker_id), n, wait)

    def report(self, worker_id: str, results: list[ResultMsg],
               started: list[str] | None = None) -> None:
        self._broker.report(self._worker(worker_id), results, started)

    def release(self, worker_id: str, task_ids: list[str], goodbye: bool = False) -> None:
        self._broker.release(self._worker(worker_id), task_ids, goodbye)

    def control(self, worker_id: str, answers: dict[str, bool], wait: float) -> list[str]:
        return self._broker.control(self._worker(worker_id), answers, wait)

    # ------------------------------------------------------------------ admin

    def __getattr__(self, name: str) -> Any:
        """Calls on what peers share by name (schedules, queues, primitives) pass through.
        Their arguments are still loaded by ``taskq.protocol.restricted``."""
        return getattr(self._broker, name)

    def status(self) -> ClusterStatus:
        status = self._broker.status()
        if self._keys_in_use is not None:
            status.keys = self._keys_in_use()
        return status

    def info(self) -> MasterInfo:
        return self._broker.info()


def _own_ids(box: str, task_ids: Any) -> list[str]:
    """The task ids among ``task_ids`` that live under outbox ``box``."""
    if type(task_ids) is not list:
        raise NotYours("task ids must be a list of strings")
    prefix = box + "-"
    return [t for t in task_ids if type(t) is str and t.startswith(prefix)]


def _check_deps(msg: TaskMsg) -> None:
    """A task's dependencies are a tuple of task ids (one for a mirror); inputs are the
    master's to attach, never a submitter's."""
    deps = msg.deps
    if type(deps) is not tuple or not all(type(d) is str for d in deps):
        raise NotYours("a task's dependencies must be a tuple of task ids")
    if msg.fn == MIRROR_FN and len(deps) != 1:
        raise NotYours("a task with no function mirrors exactly one dependency")
    msg.inputs = ()
