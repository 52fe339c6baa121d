"""The version handshake: what each side runs, and whether the two can work together.

After the authkey challenge, and before any pickle crosses, the connecting peer sends its
versions and the master answers with its own, or with why it refuses::

    peer  ── b"taskq-hello {json}" ─────────────────────────────────► master
    peer  ◄─ b"taskq-ok {json}"   or   b"taskq-refused <one line>" ── master

Versions are taskq's wire protocol, the Python version (major.minor) and cloudpickle's.
A different protocol (or Python major) is refused, naming both sides and what to align; a
different Python minor or cloudpickle is allowed (the master never unpickles user code)
and logged once per combination, because functions shipped by value need the submitter's
and the worker's to agree (a worker checks that per task, see ``taskq.protocol.messages``).
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from dataclasses import asdict, dataclass
from importlib import metadata
from multiprocessing import connection

from taskq import logs
from taskq.errors import VersionMismatch

log = logs.get_logger(__name__)

# The wire protocol: bump it when a message, a call or the meaning of a name changes.
# 2: outbox and worker names are secrets held by their owners (taskq.protocol.names).
# 3: a task carries its dependencies and, leased, their results (TaskMsg.deps, .inputs);
#    the master's replies (Fetched, MasterInfo, status rows) are pickled as
#    taskq.protocol.replies; stops and progress ride the control channel and heartbeats.
# 4: the messages and replies live in the role packages (taskq.protocol.messages, .replies,
#    .progress, .prims), the broker's calls take their flags in declared order, and a
#    report is answered once journaled.
# 5: a report is answered at once with a Receipt (the worker keeps its results until one
#    says they are journaled, and re-sends them to a restarted master); a result names its
#    attempt; MasterInfo names the master's run (epoch).
# 6: a worker's heartbeat is ``beat``, a Beat (a digest of what it holds; the list goes in
#    ``heartbeat`` only on a join or when asked); ``take`` is its one poll, for tasks up to
#    what it holds (``hold``) and for cancel requests (``control`` is gone), answered with
#    Leased. A worker opens two connections. ``flush``.
# 7: a worker that cannot load a task says so (Status.UNLOADABLE), and the master hands
#    the task to another worker; a task no worker could load ends UNLOADABLE.
# 8: the master serves its broker under a fixed id (``net.managers.BROKER_ID``): a peer
#    connects with one handshake per connection and no ``dummy``, ``create``, ``incref``
#    or ``decref`` request, which the master no longer serves.
# 9: a task may expire (TaskOptions.expires, .expires_at; Status.EXPIRED) and carry a
#    soft timeout (TaskOptions.soft_timeout).
# 10: a task's options carry W3C traceparents (TaskOptions.trace, .trace_prev) and a result
#    the traceparent of its attempt's span (ResultMsg.trace).
# 11: a task may keep its result for reading by id (TaskOptions.result_ttl), and the
#    ``result_states`` call says whether a result is kept, expired or unknown.
# 12: dead letters: ``dead_letters`` lists the tasks that failed for good, ``replay`` runs
#    them again as new tasks (answered with Replayed).
# 13: ``Leased.ticket``: a worker starts leased tasks only once the journal has the leases.
# 14: an operator pauses, resumes and purges queues (queue_pause, queue_purge) and drains
#    workers (worker_drain); a beat's answer may tell a worker to drain (Beaten.drain), a
#    worker that drains says so when it joins (WorkerHello.draining); QueueRow.paused,
#    WorkerRow.draining.
# 15: TaskOptions carry callbacks (on_failure, on_success), the dependencies a task lets fail
#    (allow_failed, their failures leased as inputs under ALLOWED_MARK) and the parent task
#    of a task submitted from inside a task; a pool process may secede from its slot.
# 16: a poll (``take``) renews its worker as a beat does, parks no longer than the worker
#    asks, and its answer carries a beat's (``Leased.beat``, ``Leased.drain``); an unknown
#    worker's poll is answered at once with beat 0. A worker that has run nothing beats
#    through its poll, on its one connection.
# 17: TaskOptions equal to the defaults travel as the name DEFAULT_OPTIONS (one object once
#    loaded, not twenty fields rebuilt on every hop).
PROTOCOL = 17
HELLO = b"taskq-hello "
OK = b"taskq-ok "
REFUSED = b"taskq-refused "
MAX_HELLO = 1024  # a hello is tens of bytes; anything longer is not one
ALIGN = "install the same taskq release (and Python version) on the master and every peer"


@dataclass(frozen=True, slots=True)
class Versions:
    protocol: int
    python: str  # "3.11"
    cloudpickle: str

    def __str__(self) -> str:
        return (f"taskq protocol {self.protocol}, Python {self.python}, "
                f"cloudpickle {self.cloudpickle}")


def local() -> Versions:
    return Versions(PROTOCOL, f"{sys.version_info[0]}.{sys.version_info[1]}",
                    _cloudpickle())


@functools.cache
def _cloudpickle() -> str:
    """Read once: the package metadata costs a scan of sys.path on every look."""
    return metadata.version("cloudpickle")


def encode(prefix: bytes, versions: Versions) -> bytes:
    return prefix + json.dumps(asdict(versions), separators=(",", ":")).encode()


def decode(prefix: bytes, data: bytes) -> Versions | None:
    """The versions in a hello or an answer; None if ``data`` is not one."""
    if not data.startswith(prefix) or len(data) > MAX_HELLO:
        return None
    try:
        fields = json.loads(data[len(prefix):])
        versions = Versions(int(fields["protocol"]), str(fields["python"])[:16],
                            str(fields["cloudpickle"])[:32])
    except (ValueError, KeyError, TypeError):
        return None
    return versions


def refusal(here: Versions, there: Versions, here_is: str, there_is: str) -> str | None:
    """Why these two cannot work together (one line naming both sides), or None."""
    if here.protocol == there.protocol and here.python.split(".")[0] == \
            there.python.split(".")[0]:
        return None
    return f"version mismatch: {here_is} runs {here}; {there_is} runs {there}; {ALIGN}"


def differences(here: Versions, there: Versions) -> list[str]:
    """What differs between two compatible sides, worth a warning."""
    out = []
    if here.python != there.python:
        out.append(f"Python {here.python} vs {there.python}: functions shipped by value run "
                   f"only where the submitter's Python minor version is")
    if here.cloudpickle != there.cloudpickle:
        out.append(f"cloudpickle {here.cloudpickle} vs {there.cloudpickle}")
    return out


_warned: set[tuple[str, Versions]] = set()
_warned_lock = threading.Lock()


def warn_once(side: str, there: Versions, **where: str) -> None:
    """Log a compatible but different peer once per process for each (side, versions)."""
    diffs = differences(local(), there)
    if not diffs:
        return
    with _warned_lock:
        if (side, there) in _warned:
            return
        _warned.add((side, there))
    log.warning("version_differs", side=side, here=str(local()), there=str(there),
                differs="; ".join(diffs), **where)


def exchange(conn: connection.Connection, where: str) -> None:
    """Tell the master this side's versions and hear its own; VersionMismatch if either
    side finds them incompatible (see ``taskq.protocol.versions``)."""
    conn.send_bytes(encode(HELLO, local()))
    answer = conn.recv_bytes(MAX_HELLO)
    if answer.startswith(REFUSED):
        said = answer[len(REFUSED):].decode("utf-8", "replace")
        raise VersionMismatch(f"the master at {where} refused this peer: {said}")
    theirs = decode(OK, answer)
    if theirs is None:
        raise VersionMismatch(f"the master at {where} answered no version: it runs a taskq "
                              f"older than protocol {PROTOCOL}; {ALIGN}")
    reason = refusal(local(), theirs, "this peer", f"the master at {where}")
    if reason is not None:
        raise VersionMismatch(reason)
    warn_once("master", theirs, address=where)



def check(c: connection.Connection, peer: str) -> None:
    """Read a peer's versions and answer with the master's, or refuse it (VersionMismatch,
    after telling the peer why)."""
    theirs = decode(HELLO, c.recv_bytes(MAX_HELLO))
    reason = (f"the peer sent no version hello: it runs a taskq older than protocol "
              f"{PROTOCOL}; {ALIGN}") if theirs is None else \
        refusal(local(), theirs, "the master", f"the peer at {peer}")
    if theirs is None or reason is not None:
        c.send_bytes(REFUSED + str(reason).encode())
        raise VersionMismatch(str(reason))
    c.send_bytes(encode(OK, local()))
    warn_once("peer", theirs, peer=peer)
