"""Unit tests of ``taskq.protocol.nesting``: a task's wait lends its slot out once, however
deeply waits nest; outside a task nothing is lent."""

from __future__ import annotations

import threading

import pytest

from taskq.protocol import nesting


def test_a_wait_inside_a_task_secedes_once_and_rejoins() -> None:
    calls: list[str] = []
    nesting.set_slot_hooks(lambda: calls.append("secede"), lambda: calls.append("rejoin"))
    try:
        with nesting.waiting():
            pass
        assert calls == [] and nesting.current_task_id() == ""
        token = nesting.enter("box-1")
        try:
            assert nesting.current_task_id() == "box-1"
            with nesting.waiting(), nesting.waiting():  # a wait inside a wait: one secede
                assert calls == ["secede"]
            assert calls == ["secede", "rejoin"]
            seen: list[str] = []
            thread = threading.Thread(target=lambda: seen.append(nesting.current_task_id()))
            thread.start()
            thread.join()
            assert seen == [""]  # a thread the task starts is not the task
        finally:
            nesting.leave(token)
        assert nesting.current_task_id() == ""
    finally:
        nesting.set_slot_hooks(nesting._nothing, nesting._nothing)


def test_a_failed_rejoin_still_ends_the_wait() -> None:
    secedes: list[int] = []

    def rejoin() -> None:
        raise OSError("pipe closed")

    nesting.set_slot_hooks(lambda: secedes.append(1), rejoin)
    token = nesting.enter("box-2")
    try:
        for _ in range(2):
            with pytest.raises(OSError, match="pipe closed"), nesting.waiting():
                pass
        assert len(secedes) == 2  # the depth was reset: the next wait secedes again
    finally:
        nesting.leave(token)
        nesting.set_slot_hooks(nesting._nothing, nesting._nothing)
