"""The worker's asyncio pool: ``async def`` tasks on one event loop, up to N at once.

    submit() ──► pending ──► loop thread: fill() ──► asyncio task "taskq:<task id>"
                                                       ├─ async def: awaited, cancelled at
                                                       │  its timeout (TIMED_OUT), or by
                                                       │  kill_task (CANCELLED); SoftTimeout
                                                       │  thrown in at its soft_timeout
                                                       └─ plain function: run in the loop's
                                                          thread executor (a thread cannot be
                                                          stopped: TIMED_OUT at the limit,
                                                          its slot busy until it returns;
                                                          on a thread of its own once tasks
                                                          that wait on others (LocalPool.
                                                          secede) hold every executor thread)
    watchdog thread: the loop's tick late by LOOP_SLOW_S ──► "task_blocks_loop" with the id

The loop runs in a thread of its own: the worker's heartbeats, leases and reports never
wait on it, so a task that blocks the loop (a ``time.sleep`` in an ``async def``) delays
the other tasks only, and is logged with its id while it blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskq import defaults, logs
from taskq.worker import execute, setup, soft_async
from taskq.worker.pools.job import Job
from taskq.worker.pools.local import LocalPool
from taskq.worker.pools.threads import THREAD_TIMEOUT_DETAIL

log = logs.get_logger(__name__)

_PREFIX = "taskq:"


def task_id_of(task: asyncio.Task[Any] | None) -> str | None:
    """The taskq task id an asyncio task of this pool runs (None for any other)."""
    name = task.get_name() if task is not None else ""
    return name[len(_PREFIX):] if name.startswith(_PREFIX) else None


class AsyncioPool(LocalPool):
    """One event loop running up to ``size`` tasks; ``runner`` is unused (the loop runs
    the decoded task itself, with ``taskq.worker.execute``)."""

    def __init__(self, size: int, runner: Callable[[Any], Any] = execute.run,
                 setup: tuple[str, ...] = ()) -> None:
        super().__init__(size, runner, setup)
        self._set_up: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._executor_threads = min(size, defaults.ASYNC_EXECUTOR_THREADS)
        self._executor = ThreadPoolExecutor(self._executor_threads,
                                            thread_name_prefix="taskq-executor")
        self._in_executor = 0  # plain function tasks in the executor (loop thread only)
        self._loop.set_default_executor(self._executor)
        self._fill_due = False
        self._tick = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._awaiting: set[str] = set()  # jobs awaiting an async def (loop thread only)
        self._thread = threading.Thread(target=self._serve, name="taskq-loop", daemon=True)
        self._dog = threading.Thread(target=self._watch_loop, name="taskq-loop-watch",
                                     daemon=True)
        self._stopped = threading.Event()

    def start(self) -> None:
        """Start the loop and run the setup hooks in it (SetupError, the loop stopped, if
        one fails); then tasks may begin."""
        self._hook_in()
        self._thread.start()
        try:
            self._set_up.result()
        except BaseException:
            self._thread.join(defaults.LOOP_STOP_S)
            self._close()
            raise
        self._dog.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(setup.run_async(self._setup))
        except BaseException as exc:
            self._set_up.set_exception(exc)
            return
        self._set_up.set_result(None)
        self._loop.call_soon(self._beat)
        self._loop.run_forever()

    def _beat(self) -> None:
        self._tick = time.monotonic()
        if not self._stopped.is_set():
            self._loop.call_later(defaults.LOOP_TICK_S, self._beat)

    def _on_submit(self) -> None:
        with self._lock:
            if self._fill_due:
                return
            self._fill_due = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the pool is stopped
            self._loop.call_soon_threadsafe(self._fill)

    def _fill(self) -> None:
        """In the loop: begin every job a slot is free for."""
        while True:
            with self._lock:
                self._fill_due = False
                job = self._begin()
            if job is None:
                return
            task = self._loop.create_task(self._run(job), name=_PREFIX + job.task_id)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _interrupt(self, job: Job) -> None:
        """Cancel the coroutine of a cancelled job (a plain function in the executor runs
        on: a thread cannot be stopped)."""
        def cancel() -> None:
            if job.task_id not in self._awaiting:
                return
            for task in self._tasks:
                if task.get_name() == _PREFIX + job.task_id:
                    task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop is closed: the pool is stopped
            self._loop.call_soon_threadsafe(cancel)

    async def _run(self, job: Job) -> None:
        loaded = execute.expired(job.payload) or execute.load(job.payload)
        value: Any = loaded
        if isinstance(loaded, execute.Loaded):
            with execute.task_context(loaded.payload):  # this coroutine's context only
                if execute.is_async(loaded.fn):
                    value = await self._await(job, loaded)
                else:
                    value = await self._in_thread(job, loaded)
        if value is not None:
            self._finish(job, value)
        self._fill()

    async def _await(self, job: Job, task: execute.Loaded) -> Any:
        """Await an ``async def`` task; cancelled at its timeout (None then), or when the
        job is cancelled while it runs (``kill_task``)."""
        self._awaiting.add(job.task_id)
        try:
            async with asyncio.timeout(job.timeout) as limit:
                value = await soft_async.within(task.fn(*task.args, **task.kwargs),
                                          task.payload.soft_timeout)
        except TimeoutError as exc:
            if limit.expired():
                self._expire(job, f"ran past its {job.timeout:g} s timeout; its coroutine "
                                  "was cancelled")
                self._finish(job, None)
                return None
            return execute.failed(exc, task.payload.retry_on)
        except asyncio.CancelledError:
            if self._closed:
                raise  # the pool gave up on it
            return execute.failed(asyncio.CancelledError(), task.payload.retry_on)
        except BaseException as exc:  # a task's SystemExit is its outcome
            return execute.failed(exc, task.payload.retry_on)
        finally:
            self._awaiting.discard(job.task_id)
        return execute.encode(value)

    async def _in_thread(self, job: Job, task: execute.Loaded) -> Any:
        """Run a plain function in the loop's executor; its slot is held until it returns."""
        call = functools.partial(contextvars.copy_context().run, execute.call, task.fn,
                                 task.args, task.kwargs, task.payload.retry_on,
                                 task.payload.soft_timeout)
        if self._in_executor < self._executor_threads:
            self._in_executor += 1
            future = self._loop.run_in_executor(None, call)
            future.add_done_callback(self._left_executor)
        else:  # every executor thread is taken (by tasks that wait on others: seceded)
            future = self._on_own_thread(call)
        done, _ = await asyncio.wait({future}, timeout=job.timeout)
        if not done and job.timeout is not None:
            self._expire(job, THREAD_TIMEOUT_DETAIL.format(job.timeout))
        return await future

    def _left_executor(self, _: asyncio.Future[Any]) -> None:
        self._in_executor -= 1

    def _on_own_thread(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``call`` on a thread of its own: the executor's threads are all taken, which
        happens only while tasks wait on others (seceded) beyond the pool's size."""
        future: asyncio.Future[Any] = self._loop.create_future()

        def settle(value: Any, exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(value)
            else:
                future.set_exception(exc)

        def run() -> None:
            try:
                value, exc = call(), None
            except BaseException as raised:  # execute.call never raises; the rest may
                value, exc = None, raised
            with contextlib.suppress(RuntimeError):  # the loop is closed: the pool stopped
                self._loop.call_soon_threadsafe(settle, value, exc)

        threading.Thread(target=run, name="taskq-executor-extra", daemon=True).start()
        return future

    def _watch_loop(self) -> None:
        """Log each task that keeps the loop from running others past LOOP_SLOW_S."""
        told: asyncio.Task[Any] | None = None
        while not self._stopped.wait(defaults.LOOP_TICK_S):
            late = time.monotonic() - self._tick
            if late < defaults.LOOP_SLOW_S:
                told = None
                continue
            task = asyncio.current_task(self._loop)
            if task is not None and task is not told:
                told = task
                log.warning("task_blocks_loop", task_id=task_id_of(task) or task.get_name(),
                            blocked_s=round(late, 3), threshold_s=defaults.LOOP_SLOW_S)

    def _shutdown(self) -> None:
        self._stopped.set()
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop)
        try:
            future.result(defaults.LOOP_STOP_S)
        except Exception:  # a blocked loop: the process ends it
            log.warning("loop_not_stopped", timeout_s=defaults.LOOP_STOP_S)
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(defaults.LOOP_STOP_S)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
