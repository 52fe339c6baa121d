"""What the master unpickles from its peers: taskq's own messages and plain values, nothing else.

A pickle names the classes and functions it needs, and unpickling calls them: a peer that
may send any pickle may run any code in the process that loads it. The master loads every
request with ``loads`` here, whose unpickler admits only the names in ``ALLOWED``: the
message dataclasses and enums of ``taskq.protocol.messages`` (their bodies stay opaque
bytes) and a few builtin containers. A pickle naming anything else raises ``Forbidden``
before that name is looked up; the caller logs it and closes the connection::

    frame ── fdio.split ── Restricted.find_class(module, name) ── in ALLOWED? ── object
                                                   └── no: Forbidden("os.system")

Clients and workers load the master's replies with plain ``pickle.loads``: they trust the
master they authenticated (and, with TLS, verified).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from typing import Any

# (module, name) pairs a request may name. Containers, numbers, strings, bytes, True/False
# and None need none: pickle has opcodes for them.
_MESSAGES = ("TaskMsg", "TaskOptions", "ResultMsg", "Status", "WorkerHello", "Schedule")
_NEW_MESSAGES = ("Beat",)  # only under taskq.protocol.messages: newer than taskq.wire
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    # the messages, under their module and under the name releases before 0.2 pickled them by
    *((module, name) for module in ("taskq.protocol.messages", "taskq.wire") for name in _MESSAGES),
    *(("taskq.protocol.messages", name) for name in _NEW_MESSAGES),
    ("taskq.protocol.messages", "DEFAULT_OPTIONS"),  # the options of most tasks, by name
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    # how protocol 2+ rebuilds a slotted dataclass (WorkerHello) and an enum member
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
})


class Forbidden(pickle.UnpicklingError):
    """A request named something the master does not load; ``name`` says what."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a request may not carry {name}")
        self.name = name


class Restricted(pickle.Unpickler):
    """An unpickler that looks up only the names in ``ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise Forbidden(f"{module}.{name}"[:200])
        return super().find_class(module, name)


def loads(blob: memoryview | bytes, buffers: Sequence[memoryview] = ()) -> Any:
    """Unpickle a request; ``Forbidden`` if it names anything outside ``ALLOWED``."""
    return Restricted(io.BytesIO(blob), buffers=buffers).load()
