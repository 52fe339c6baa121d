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
from typing import Any

from taskq.defaults import CLIENT_OUTBOX_PREFIX, JOB_OUTBOX_PREFIX

DIGEST_HEX = 32  # 128 bits: a public name does not collide and gives its claim away to no one
WORKER_DIGEST_HEX = 12  # after the worker's host and pid: unique per host and pid
MAX_NAME = 512  # a claim longer than this is refused (names are short: ids, job names)


class NotYours(ValueError):
    """A call named something its caller does not own (sent back as MasterError)."""


@functools.lru_cache(maxsize=4096)  # a few claims make every call: hash each once
def _digest(claim: str, size: int) -> str:
    return hashlib.sha256(claim.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def checked_claim(claim: Any, what: str) -> str:
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


