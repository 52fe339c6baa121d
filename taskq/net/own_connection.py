"""Each thread's own connection to the master, for a broker proxy (``managers.BrokerProxy``
keeps one of these as ``_tls``, where the standard library's proxy keeps a thread-local).

    proxy._tls.connection ──► _THREADS (one threading.local, made once)
                                └── this thread's WeakKeyDictionary: OwnConnection -> conn
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

# Every thread's connections of every proxy: one thread-local for the process, made once and
# cleared in a forked child. A thread-local per proxy, made and dropped by the thousand in
# a process of a thousand threads (a crowd of workers reconnecting), crashed CPython before
# 3.13 in its deallocation (python/cpython#120973: it walks every thread's state while a
# connection it drops releases the GIL and lets a thread exit).
_THREADS = threading.local()
os.register_at_fork(after_in_child=lambda: _THREADS.__dict__.clear())  # (the child's thread)


class OwnConnection:
    """A proxy's ``_tls``: the calling thread's own ``connection`` to the master (what a
    ``threading.local`` per proxy would hold), kept in the process-wide _THREADS."""

    __slots__ = ("__weakref__",)

    def __getattr__(self, name: str) -> Any:
        conns = _THREADS.__dict__.get("conns")
        conn = conns.get(self) if conns is not None and name == "connection" else None
        if conn is None:
            raise AttributeError(name)
        return conn

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "connection":
            raise AttributeError(name)
        conns = _THREADS.__dict__.get("conns")
        if conns is None:
            conns = _THREADS.conns = weakref.WeakKeyDictionary()
        conns[self] = value

    def __delattr__(self, name: str) -> None:
        conns = _THREADS.__dict__.get("conns")
        if name != "connection" or conns is None or conns.pop(self, None) is None:
            raise AttributeError(name)
