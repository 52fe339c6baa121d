"""New connections are handshaken newest first, and one that waited longer than its peer
waits is dropped unserved: a crowd reconnecting at once gets in instead of timing out."""

from __future__ import annotations

import threading

from taskq.net.admission import Admission


def test_newest_first_and_the_stale_dropped() -> None:
    now = [0.0]
    served: list[str] = []
    dropped: list[str] = []
    first_in = threading.Event()
    go = threading.Event()
    done = threading.Event()

    def handshake(conn: str) -> None:
        if conn == "first":
            first_in.set()
            assert go.wait(10)
        served.append(conn)
        if len(served) == 3:
            done.set()

    admission = Admission(handshake, dropped.append, threads=1, patience=5.0,
                          clock=lambda: now[0])
    try:
        admission.admit("first")  # holds the one thread
        assert first_in.wait(10)
        admission.admit("old")  # at 0: its peer gives up at 5
        now[0] = 4.0
        admission.admit("middle")
        admission.admit("new")
        now[0] = 6.0  # "old" waited 6 s, "middle" 2 s
        go.set()
        assert done.wait(10)
        assert served == ["first", "new", "middle"]
        assert dropped == ["old"]
        assert admission.waiting() == 0
    finally:
        admission.stop()
    admission.admit("late")  # after stop: dropped at once
    assert dropped == ["old", "late"]
