"""Shared primitives as peers name them: the kinds, the rules for a name, and the row
``taskq primitives`` shows (the master's state of them is ``taskq.master.state.primitives``)."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("lock", "semaphore", "dict", "counter", "queue", "event")


MAX_NAME = 200  # characters in a primitive's name (or a dict key)


@dataclass(slots=True)
class PrimRow:
    """One line of ``taskq primitives``."""

    name: str
    kind: str
    holders: int
    waiters: int
    size: int  # dict keys, queue items (ready and in flight), counter value, event flag
    capacity: int  # semaphore value, queue maxsize


def check_name(name: object, what: str = "name") -> str:
    """A primitive's name (or a dict key): a non-empty str of at most MAX_NAME characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise ValueError(f"bad {what} {shown}: expected a non-empty str of at most "
                         f"{MAX_NAME} characters")
    return name
