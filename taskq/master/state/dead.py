"""Dead letters: the tasks that failed for good, with their calls, kept to be replayed.

A task that ends failed after its retries (it raised, crashed, timed out, every worker it
was given to was lost, or no worker could load it) keeps its call, the opaque function and
argument bytes the master already holds (never unpickled here), for as long as the task
history is kept (``History.keep_s``, ``--history``) and for at most ``History.max_tasks``
of them. A replay is a new task (a new id) with the same call and options, linked both ways
to the one it replays::

    _finish(rec, failed result) ──► DeadLetters.ended(msg, result) ──► letters[id]  (journaled)
    replay(ids, new ids, outbox) ──► new TaskMsg, same fn/args/options ──► BrokerState.submit
                                     letters[id].replayed_as += new id; origin[new] = id
    prune(wall) ──► past keep_s, or beyond max_tasks: the call is dropped, a tombstone kept
                    (so that a replay says the call expired), itself dropped after another
                    keep_s (DEAD_LETTER_TOMBSTONE_S at least)

Cancelled, expired, refused and dependency-failed tasks are not dead letters (nothing failed
in them, or they never could run), nor are tasks whose arguments are other tasks' results
(their dependencies' results are not kept for a replay).
"""

from __future__ import annotations

import pickletools
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from taskq.defaults import DEAD_LETTER_TOMBSTONE_S
from taskq.protocol.messages import MIRROR_FN, Body, ResultMsg, Status, TaskMsg, TaskOptions

DEAD = frozenset({Status.ERROR, Status.CRASHED, Status.TIMEOUT, Status.LOST,
                  Status.UNLOADABLE})
"""How a task that failed for good ended (the statuses that make a dead letter)."""

_NAME_SCAN = 1 << 16  # bytes of a function's pickle read for its name (names come first)
_BY_VALUE = b"TQBV"  # taskq.protocol.bodies marks a function pickled by value so


@dataclass(slots=True)
class DeadLetter:
    """A task that failed for good, its call kept (``fn``/``args`` empty once expired)."""

    task_id: str
    outbox: str
    fn: bytes
    args: bytes
    options: TaskOptions
    status: Status
    ended: float  # wall-clock seconds
    # "module:qualname", read from the pickle's opcodes ("?" unknown) when first listed or
    # journaled, not when the task fails (that may be often, and under the broker's lock)
    function: str = ""
    error_type: str = ""
    detail: str = ""  # one line: the exception's last line, or how it ended
    replayed_as: list[str] = field(default_factory=list)
    expired: bool = False  # its call was dropped (retention ran out)

    def row(self) -> dict[str, Any]:
        """What ``taskq failed`` lists."""
        if not self.function:
            self.function = function_name(self.fn)
        return {"task_id": self.task_id, "queue": self.options.queue,
                "job": self.outbox[4:] if self.outbox.startswith("job:") else self.outbox,
                "function": self.function, "ended": self.ended, "status": self.status.value,
                "error_type": self.error_type, "detail": self.detail,
                "replayed_as": list(self.replayed_as)}


def function_name(fn: bytes) -> str:
    """A pickled function's "module:qualname", read from its opcodes (nothing is loaded or
    run): a function by reference names itself in its first global (a ``taskq submit``
    call by name in the two strings after it); one pickled by value carries ``__module__``
    and ``__qualname__`` in its state. "?" when neither is found."""
    data = fn[6:] if fn.startswith(_BY_VALUE) else fn
    pushed = _pushed(data[:_NAME_SCAN])
    first = next((v for v in pushed if isinstance(v, tuple)), None)
    keys = ("module", "name") if first == _BY_NAME else ("__module__", "__qualname__")
    if first is not None and first != _BY_NAME and not str(first[0]).startswith("cloudpickle"):
        return f"{first[0]}:{first[1]}"
    found = {v: pushed[i + 1] for i, v in enumerate(pushed[:-1]) if v in keys}
    module, qualname = found.get(keys[0]), found.get(keys[1])
    if isinstance(qualname, str):
        return f"{module if isinstance(module, str) else '?'}:{qualname}"
    return "?"


_BY_NAME = ("taskq.client.jobs", "CallByName")  # what ``taskq submit MODULE:FUNC`` sends
_GETS = ("GET", "BINGET", "LONG_BINGET")
_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")
_QUIET = ("MEMOIZE", "FRAME", "PROTO", "MARK", "STOP", *_PUTS)


def _pushed(data: bytes) -> list[object]:
    """What a pickle's opcodes push, in order: strings, (module, name) for a global, None
    for anything else; memo gets resolved. Opcodes are only read (``pickletools.genops``)."""
    pushed: list[object] = []
    memo: dict[object, object] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            top = pushed[-1] if pushed else None
            if op.name == "MEMOIZE":
                memo[len(memo)] = top
            elif op.name in _PUTS:
                memo[arg] = top
            elif op.name in _GETS:
                pushed.append(memo.get(arg))
            elif "UNICODE" in op.name and isinstance(arg, str):
                pushed.append(arg)
            elif op.name == "STACK_GLOBAL":
                pair = tuple(pushed[-2:])
                pushed[-2:] = [pair if all(isinstance(v, str) for v in pair) else None]
            elif op.name == "GLOBAL" and isinstance(arg, str):
                pushed.append(tuple(arg.split(" ", 1)))
            elif op.name not in _QUIET:
                pushed.append(None)
    except Exception:  # noqa: S110 -- a truncated or odd pickle: what was read is enough
        pass
    return pushed


def one_line(result: ResultMsg) -> tuple[str, str]:
    """(error type, one-line detail) of a failed result: a traceback's last line."""
    lines = [line.strip() for line in result.detail.splitlines() if line.strip()]
    last = lines[-1] if lines else result.status.value
    kind = ""
    if result.status is Status.ERROR:
        head = last.split(":", 1)[0].strip()
        kind = head if head and " " not in head else ""
    return kind or result.status.value, last[:200]


class DeadLetters:
    """See the module docstring."""

    def __init__(self) -> None:
        self.letters: dict[str, DeadLetter] = {}  # by task id, whether expired or not
        self.origin: dict[str, str] = {}  # replay's task id -> the task it replays
        # the ids of the letters whose call is kept, and of the expired ones (tombstones),
        # each in the order they ended: prune looks only at the front of each
        self._live: OrderedDict[str, None] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._written: dict[str, DeadLetter] = {}
        self._gone: list[str] = []

    def ended(self, msg: TaskMsg, result: ResultMsg, wall: float) -> DeadLetter | None:
        """A task ended: kept if it failed for good (and could be run again)."""
        if result.status not in DEAD or msg.deps or msg.fn == MIRROR_FN:
            return None
        kind, detail = one_line(result)
        letter = DeadLetter(task_id=msg.task_id, outbox=msg.outbox, fn=msg.fn,
                            args=bytes(msg.args), options=msg.options, status=result.status,
                            ended=wall, error_type=kind, detail=detail)
        self.restore(letter)
        self._written[letter.task_id] = letter
        return letter

    def restore(self, letter: DeadLetter) -> None:
        """Put back a journaled dead letter (oldest first)."""
        self.letters[letter.task_id] = letter
        order = self._expired if letter.expired else self._live
        order[letter.task_id] = None
        order.move_to_end(letter.task_id)
        for new_id in letter.replayed_as:
            self.origin[new_id] = letter.task_id

    def replayed(self, letter: DeadLetter, new_id: str) -> None:
        letter.replayed_as.append(new_id)
        self.origin[new_id] = letter.task_id
        self._written[letter.task_id] = letter

    def task(self, letter: DeadLetter, new_id: str, outbox: str) -> TaskMsg:
        """The replay of ``letter``: its call and options, as a new task that starts now
        (no delay, no unique key: the original's has ended; an ``expires`` counts from the
        replay, not from the original's submit)."""
        options = replace(letter.options, run_at=0.0, unique="", unique_for=0.0,
                          expires_at=0.0)
        args: Body = letter.args
        return TaskMsg(task_id=new_id, outbox=outbox, fn=letter.fn, args=args,
                       options=options)

    @property
    def live_count(self) -> int:
        """How many letters still keep their call."""
        return len(self._live)

    def live(self, queue: str | None, since: float | None) -> list[DeadLetter]:
        """The dead letters that can be replayed, newest first."""
        letters = (self.letters[t] for t in reversed(self._live))
        return [d for d in letters if (queue is None or d.options.queue == queue)
                and (since is None or d.ended >= since)]

    def prune(self, wall: float, keep_s: float, max_kept: int) -> None:
        """Expire the calls older than ``keep_s`` (and the oldest beyond ``max_kept``);
        forget the tombstones older than another ``keep_s`` (DEAD_LETTER_TOMBSTONE_S at
        least), and the oldest beyond ``max_kept`` of them."""
        while self._live:
            letter = self.letters[next(iter(self._live))]
            if letter.ended >= wall - keep_s and len(self._live) <= max_kept:
                break
            del self._live[letter.task_id]
            letter.expired, letter.fn, letter.args = True, b"", b""
            self._expired[letter.task_id] = None
            self._written[letter.task_id] = letter
        until = wall - keep_s - max(keep_s, DEAD_LETTER_TOMBSTONE_S)
        while self._expired:
            letter = self.letters[next(iter(self._expired))]
            if letter.ended >= until and len(self._expired) <= max_kept:
                break
            del self._expired[letter.task_id]
            self._forget(letter)

    def _forget(self, letter: DeadLetter) -> None:
        del self.letters[letter.task_id]
        for new_id in letter.replayed_as:
            self.origin.pop(new_id, None)
        self._written.pop(letter.task_id, None)
        self._gone.append(letter.task_id)

    def drain(self) -> tuple[list[DeadLetter], list[str]]:
        written, gone = list(self._written.values()), self._gone
        self._written, self._gone = {}, []
        return written, gone
