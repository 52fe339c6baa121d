"""Unit tests of the time limits a task carries: ``expires`` and ``soft_timeout`` checked at
the call, the worker's refusal to start a task past its deadline, and ``taskq.SoftTimeout``
raised in a running call (main thread, another thread, a coroutine) and never after it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import pytest

import taskq
from taskq.protocol import bodies
from taskq.protocol.messages import ResultMsg, Status
from taskq.protocol.options import make_options
from taskq.worker import execute, soft, soft_async


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"expires": 0}, "expires must be a positive number of seconds, not 0"),
    ({"expires": -3}, "expires must be a positive number of seconds, not -3"),
    ({"expires": "5"}, "expires must be a positive number of seconds, not '5'"),
    ({"expires": float("inf")}, "expires must be a positive"),
    ({"soft_timeout": 0}, "soft_timeout must be a positive number of seconds, not 0"),
    ({"soft_timeout": True}, "soft_timeout must be a positive number of seconds, not True"),
    ({"soft_timeout": 5, "timeout": 2}, "soft_timeout must be less than timeout"),
    ({"soft_timeout": 2, "timeout": 2}, "soft_timeout must be less than timeout"),
])
def test_bad_limits_are_one_line_errors_at_the_call(kwargs: dict[str, Any],
                                                    expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as raised:
        taskq.task(time.sleep, **kwargs)
    assert "\n" not in str(raised.value)


def test_good_limits_are_carried_by_the_task() -> None:
    options = make_options(timeout=10, soft_timeout=2.5, expires=60)
    assert (options.timeout, options.soft_timeout, options.expires) == (10.0, 2.5, 60.0)
    assert options.expires_at == 0.0  # the master sets it
    assert make_options(soft_timeout=1).soft_timeout == 1.0  # no hard limit needed
    assert options.extra()["expires"] == 60.0  # journaled with the task


def test_a_task_past_its_deadline_is_not_started_by_its_worker(tmp_path: Any) -> None:
    ran = tmp_path / "ran"
    payload = execute.Payload(fn=bodies.encode_function(ran.touch), args=bodies.encode_args(
        (), {}), expires_at=time.time() - 1)
    result = execute.run(payload)
    assert result.status is Status.EXPIRED and "never ran" in result.detail
    assert not ran.exists()
    in_time = execute.Payload(fn=payload.fn, args=payload.args, expires_at=time.time() + 60)
    assert execute.run(in_time).status is Status.OK and ran.exists()


def test_an_expired_result_raises_task_expired() -> None:
    with pytest.raises(taskq.TaskExpired, match="never ran"):
        bodies.decode_result(ResultMsg("t", Status.EXPIRED, detail="it never ran"))


def _work(seconds: float, step: float = 0.01) -> str:
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(step)
    except taskq.SoftTimeout:
        return "cleaned"
    return "finished"


def test_the_main_thread_gets_it_even_in_a_blocking_sleep() -> None:
    started = time.monotonic()
    with soft.limit(0.2):
        assert _work(10, step=10) == "cleaned"
    assert time.monotonic() - started < 5


def test_another_thread_gets_it_at_its_next_instruction() -> None:
    out: list[str] = []

    def run() -> None:
        with soft.limit(0.2):
            out.append(_work(10))
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert out == ["cleaned"]


@pytest.mark.parametrize("on_thread", [False, True])
def test_a_call_that_returns_in_time_leaves_nothing_behind(on_thread: bool) -> None:
    out: list[str] = []

    def run() -> None:
        with soft.limit(0.1):
            out.append(_work(0.01))
        out.append(_work(0.3))  # the timer would have fired in here
    if on_thread:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10)
    else:
        run()
    assert out == ["finished", "finished"]


def test_a_coroutine_gets_it_where_it_awaits_and_may_await_again() -> None:
    async def task() -> str:
        try:
            await asyncio.sleep(10)
        except taskq.SoftTimeout:
            await asyncio.sleep(0.01)
            return "cleaned"
        return "finished"

    async def main() -> tuple[str, bool]:
        value = await soft_async.within(task(), 0.1)
        current = asyncio.current_task()
        return value, current is not None and current.cancelling() == 0

    assert asyncio.run(main()) == ("cleaned", True)


def test_a_coroutine_that_ignores_it_still_meets_an_outer_timeout() -> None:
    async def stubborn() -> str:
        for _ in range(100):
            with contextlib.suppress(taskq.SoftTimeout):
                await asyncio.sleep(0.05)
        return "finished"

    async def main() -> str:
        try:
            async with asyncio.timeout(0.4):
                return str(await soft_async.within(stubborn(), 0.1))
        except TimeoutError:
            return "timed out"

    assert asyncio.run(main()) == "timed out"


def test_call_raises_it_in_a_plain_function_and_in_a_coroutine_function() -> None:
    async def coro() -> str:
        try:
            await asyncio.sleep(10)
        except taskq.SoftTimeout:
            return "cleaned"
        return "finished"

    assert bodies.decode_result(_as_result(execute.call(_work, (5,), {}, (), 0.1))) \
        == "cleaned"
    assert bodies.decode_result(_as_result(execute.call(coro, (), {}, (), 0.1))) == "cleaned"
    uncaught = execute.call(time.sleep, (5,), {}, (), 0.1)
    assert uncaught.status is Status.ERROR
    with pytest.raises(taskq.SoftTimeout, match=r"soft_timeout of 0\.1 s"):
        bodies.decode_result(_as_result(uncaught))


def _as_result(ran: execute.RunResult) -> ResultMsg:
    return ResultMsg("t", ran.status, ran.body, ran.detail)
