"""``taskq.current_client()``: inside a task, a ``Client`` of the master its worker serves,
with the worker's key and TLS settings (one per pool process, reused by every task it runs,
let go of when the process exits).

    worker ── TASKQ_TASK_MASTER, TASKQ_TASK_AUTHKEY, TASKQ_TLS_* ──► its pool processes
    task ── current_client() ──► Client (this process's) ── submit: options.parent = the task
        future.result() / map ── the task's slot is given up while it waits
                                 (``taskq.protocol.nesting``)
"""

from __future__ import annotations

import atexit
import os
import threading
from multiprocessing import util

from taskq import defaults
from taskq.client.client import Client
from taskq.net.tls import TLS

_current: tuple[int, Client] | None = None
_lock = threading.Lock()

OUTSIDE = ("taskq.current_client() works only inside a task that a taskq worker runs; "
           "elsewhere create one: taskq.Client(address, authkey)")


def current_client() -> Client:
    """Inside a task: a client of the master that runs it (one per pool process). Tasks it
    submits are the task's children: a hard cancel of the task cancels them too."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            address = os.environ.get(defaults.ENV_TASK_MASTER)
            key = os.environ.get(defaults.ENV_TASK_AUTHKEY)
            if not address or not key:
                raise RuntimeError(OUTSIDE)
            client = Client(address, key.encode("utf-8", "surrogateescape"),
                            tls=TLS.from_env(), connect_for=defaults.CONNECT_TIMEOUT_S * 2)
            _current = (os.getpid(), client)
            atexit.register(client.release)  # the worker's own process (thread pools)
            util.Finalize(client, client.release, exitpriority=10)  # a pool process
        return _current[1]
