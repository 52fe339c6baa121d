"""How far a running task got, as it crosses processes: a task reports it in its pool, the
worker sends the latest value with its heartbeat, the master keeps it on the task's record and
hands it to the submitter with its next fetch (``taskq.worker.report`` is the task's side)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from taskq.defaults import PROGRESS_MESSAGE_MAX


class Progress(NamedTuple):
    """How far a running task got: ``done`` of ``total`` (None: unknown), and a message."""

    done: float
    total: float | None = None
    message: str | None = None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or math.isinf(value):
        raise ValueError(f"bad {name} {value!r}: expected a finite number")
    if value < 0:
        raise ValueError(f"bad {name} {value!r}: expected a number >= 0")
    return value


def check(done: Any, total: Any = None, message: Any = None) -> Progress:
    """The progress these values make; ValueError naming a bad one."""
    done = _number(done, "done")
    if total is not None:
        total = _number(total, "total")
        if total < done:
            raise ValueError(f"bad total {total!r}: expected a number >= done ({done!r})")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"bad message {message!r}: expected a string or None")
    if message is not None and len(message) > PROGRESS_MESSAGE_MAX:
        message = message[:PROGRESS_MESSAGE_MAX]
    return Progress(done, total, message)


def from_wire(value: Any) -> Progress | None:
    """A progress as peers send it (a plain tuple); None if it is not one."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    try:
        return check(*value)
    except ValueError:
        return None


def describe_progress(progress: Any) -> str:
    """A progress as words: "3/10 (30%) parsing", "12"."""
    done, total, message = progress
    text = f"{done:g}" if total is None else f"{done:g}/{total:g}"
    if total:
        text += f" ({100 * done / total:.0f}%)"
    return f"{text} {message}" if message else text
