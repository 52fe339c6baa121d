"""What runs inside a pool process: read payloads, run the runner on each, answer in order.

    owner ── [packed payload]... ──► child_main ── runner(payload) ──► (status, value, rss)
                                        │               └─ report_progress ──► ProgressSlot
                                        └─ dropped by the owner (Claims) ──► (SKIPPED, None, 0)
    the task waits on other tasks ──► (SECEDE, ...) ... (REJOIN, ...): its slot is lent out
    owner's watchdog pipe end closed (owner died) ──► _watch_owner ──► os._exit
    first, the initializer (``--setup`` hooks) ──► (READY, None, 0), or (RAISED, why, 0) and exit
    SIGTERM / SIGINT sent to the worker's process group ──► ignored: only the worker stops
    its pool (``shield_stop_signals``; the forkserver too, see ``taskq.worker.pools.shield``)

Kept apart from ``taskq.worker.pools.process`` (the owner's side) so a pool process loads only this.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from taskq.errors import TaskqError
from taskq.protocol import frames, nesting
from taskq.worker import report
from taskq.worker.pools.claims import Claims
from taskq.worker.pools.progress_slot import ProgressSlot

OK, RAISED, SKIPPED, READY = 0, 1, 2, 3
# not answers: the running task gave up its slot while it waits on other tasks, or took it
# back (``taskq.protocol.nesting``); sent between the answers, on the same pipe
SECEDE, REJOIN = 4, 5
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Results are sent with a 4-byte length: they are kept under 2 GiB.
_MAX_RESULT = 0x7FFFFFFF


def _watch_owner(fd: int) -> None:
    """Exit the child as soon as the owner's end of the watchdog pipe is gone."""
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    os._exit(1)


def _ignore(signum: int, frame: object) -> None:
    """A stop signal sent to the worker's whole process group: the worker decides."""


def shield_stop_signals() -> None:
    """Outlive SIGTERM and SIGINT sent to the worker's process group (a supervisor that
    signals the group: ``tini -g``, ``kill -- -PGID``), so running tasks finish while the
    worker drains. A handler that does nothing, not SIG_IGN: a program a task starts gets
    the default handling back when it execs. System calls it interrupts are restarted, so
    a task's C code sees no EINTR from it either."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore)
        signal.siginterrupt(sig, False)


def own_resident_bytes(page: int) -> int:
    """Resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * page
    except (OSError, ValueError, IndexError):
        return 0


def _run_one(runner: Callable[[Any], Any], blob: memoryview, buffers: list[memoryview],
             page: int) -> bytes:
    try:
        payload = pickle.loads(blob, buffers=buffers)  # noqa: S301 -- a task from this worker's parent process, over a private pipe
    except Exception as exc:
        status, value = RAISED, f"payload could not be unpickled: {type(exc).__name__}: {exc}"
    else:
        try:
            status, value = OK, runner(payload)
        except BaseException as exc:
            status, value = RAISED, f"runner raised {type(exc).__name__}: {exc}"
    rss = own_resident_bytes(page) if page else 0
    try:
        data = frames.dumps((status, value, rss))
    except Exception as exc:
        detail = f"result could not be pickled: {type(exc).__name__}: {exc}"
        return pickle.dumps((RAISED, detail, rss), _PROTOCOL)
    if len(data) > _MAX_RESULT:
        return pickle.dumps((RAISED, f"result too large: {len(data)} bytes", rss), _PROTOCOL)
    return data


def _set_up(initializer: Callable[[], None] | None, send: Callable[[bytes], None]) -> bool:
    """Run the initializer; tell the owner READY, or (RAISED, why) if it failed."""
    try:
        if initializer is not None:
            initializer()
    except BaseException as exc:  # a hook's SystemExit, too: the owner says why
        why = str(exc) if isinstance(exc, TaskqError) else f"{type(exc).__name__}: {exc}"
        send(pickle.dumps((RAISED, why, 0), _PROTOCOL))
        return False
    send(pickle.dumps((READY, None, 0), _PROTOCOL))
    return True


def _locked(send: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``send``, one message at a time (a task's thread may say it waits, see SECEDE)."""
    lock = threading.Lock()

    def locked(data: bytes) -> None:
        with lock:
            send(data)
    return locked


def child_main(conn: Connection, watchdog: Connection, runner: Callable[[Any], Any],
               initializer: Callable[[], None] | None, measure: bool, claims: Claims,
               progress: ProgressSlot) -> None:
    """Body of a pool process: run every payload it is sent (but those its owner dropped),
    answer each in order; its tasks' progress goes to its shared slot."""
    shield_stop_signals()
    report.set_sink(progress.write)
    threading.Thread(target=_watch_owner, args=(watchdog.fileno(),), daemon=True).start()
    fd, send = conn.fileno(), _locked(conn.send_bytes)
    if not _set_up(initializer, send):
        return
    page = os.sysconf("SC_PAGE_SIZE") if measure else 0
    nesting.set_slot_hooks(lambda: send(pickle.dumps((SECEDE, None, 0), _PROTOCOL)),
                           lambda: send(pickle.dumps((REJOIN, None, 0), _PROTOCOL)))
    skipped = pickle.dumps((SKIPPED, None, 0), _PROTOCOL)
    seq = 0
    while True:
        try:
            message = frames.read_message(fd)
        except EOFError:
            return
        if not message:  # told to retire
            return
        view, pos = memoryview(message), 0
        while pos < len(message):
            blob, buffers, pos = frames.split(view, pos)
            progress.current = seq
            send(_run_one(runner, blob, buffers, page) if claims.begin(seq) else skipped)
            seq += 1
