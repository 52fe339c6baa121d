"""How a pool process tells its owner the progress of the job it runs: one small shared
slot per process, written in place by the task (no message, no system call), read by the
owner when the worker heartbeats. Only the latest value is kept: a task reporting 100,000
times costs 100,000 writes to shared memory, and the owner reads it at most once a beat::

    child: job seq begins ──► slot.current = seq   report_progress ──► slot.write(...)
    owner (heartbeat): slot.read(seq of the job it knows runs) ──► Progress or None

One writer (the task's thread in the child) and one reader (the owner); a version counter
that is odd while a write is under way lets the reader skip a torn value (it reads again
at the next beat).
"""

from __future__ import annotations

from multiprocessing.context import BaseContext
from typing import Any

from taskq.defaults import PROGRESS_MESSAGE_MAX
from taskq.protocol.progress import Progress

_MESSAGE_BYTES = PROGRESS_MESSAGE_MAX  # UTF-8 bytes kept (a message of wide characters is cut)
_NONE = -1.0  # a total or message that was not given


class ProgressSlot:
    """The shared record of one pool process; passed to it when it starts."""

    def __init__(self, ctx: BaseContext) -> None:
        self._version: Any = ctx.RawValue("q", 0)  # odd: a write is under way
        self._job: Any = ctx.RawValue("q", -1)  # the job the value belongs to
        self._numbers: Any = ctx.RawArray("d", 3)  # done, total, message length
        self._message: Any = ctx.RawArray("c", _MESSAGE_BYTES)
        self.seen = 0  # owner side: the version last read
        self.current = -1  # child side: the job it runs (a plain attribute: free to set)

    def write(self, _task_id: str, progress: Progress) -> None:
        """In the child: the running job's latest progress (a ``taskq.worker.report`` sink)."""
        data = b"" if progress.message is None else \
            progress.message.encode("utf-8", "replace")[:_MESSAGE_BYTES]
        self._version.value += 1
        self._job.value = self.current
        self._numbers[0] = progress.done
        self._numbers[1] = _NONE if progress.total is None else progress.total
        self._numbers[2] = _NONE if progress.message is None else len(data)
        if data:
            self._message[:len(data)] = data
        self._version.value += 1

    def read(self, job: int) -> Progress | None:
        """In the owner: job ``job``'s progress if it changed since the last read."""
        version = self._version.value
        if version == self.seen or version % 2 or self._job.value != job:
            return None
        done, total, size = self._numbers[:]
        message = None if size == _NONE else \
            self._message[:int(size)].decode("utf-8", "ignore")
        if self._version.value != version:
            return None  # torn: read again at the next beat
        self.seen = version
        return Progress(_number(done), None if total == _NONE else _number(total), message)


def _number(value: float) -> float:
    """A whole number as an int again (the slot holds doubles)."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
