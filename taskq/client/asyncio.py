"""``AsyncClient``: the ``Client`` for asyncio programs; no call blocks the event loop.

    await submit(fn, ...) ── encode, queue (in the loop; a full queue is awaited in a
          │                  thread, never slept on) ──► Client's sender thread ──► master
          ▼ asyncio.Future ◄── call_soon_threadsafe ◄── TaskFuture settled by the Client's
                                                        receiver thread
    fut.cancel() ──► TaskFuture.cancel() in a thread (one call to the master)

It wraps a ``taskq.Client`` (one link, the same guarantees: reconnects, resubmits, no future
lost across a master restart); connecting and shutting down run in threads. A synchronous
``TaskFuture`` can be awaited with ``asyncio.wrap_future(future)``; that wrapper's cancel
calls the master from the loop, so for cancellable awaitables use this client's futures.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, overload

from taskq.client.client import Client, _Entry
from taskq.client.future import P, R, TaskFuture
from taskq.client.map import chunk_runner, chunks


class AsyncClient:
    """``async with AsyncClient(address) as client: result = await client.submit(fn, x)``.
    Arguments are those of ``Client``; nothing connects until ``start()`` (or ``async
    with``)."""

    def __init__(self, address: str | tuple[str, int] | None = None,
                 authkey: bytes | str | None = None, **kwargs: Any) -> None:
        self._make = functools.partial(Client, address, authkey, **kwargs)
        self._client: Client | None = None

    async def start(self) -> AsyncClient:
        """Connect (in a thread); returns self."""
        if self._client is None:
            self._client = await asyncio.to_thread(self._make)
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.shutdown(cancel_futures=exc is not None)

    @property
    def client(self) -> Client:
        """The synchronous client underneath (for what this one does not wrap)."""
        if self._client is None:
            raise RuntimeError("AsyncClient not started: use `async with` or await start()")
        return self._client

    @overload  # an async def's future holds what it returns once awaited (on the worker)
    async def submit(self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args,
                     **kwargs: P.kwargs) -> asyncio.Future[R]: ...
    @overload
    async def submit(self, fn: Callable[P, R], /, *args: P.args,
                     **kwargs: P.kwargs) -> asyncio.Future[R]: ...

    async def submit(self, fn: Callable[..., Any], /, *args: Any,
                     **kwargs: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the cluster (an ``async def`` is awaited there);
        returns an asyncio.Future. Pickling errors raise here."""
        client = self.client
        entry = client._prepare(client._encode_fn(fn), args, kwargs,
                                getattr(fn, "taskq_options", None))
        return await self._enqueue(entry)

    async def _enqueue(self, entry: _Entry) -> asyncio.Future[Any]:
        client = self.client
        if not client._enqueue(entry, block=False):  # backpressure: wait in a thread
            await asyncio.to_thread(client._enqueue, entry, True)
        future = _bridge(entry.future, asyncio.get_running_loop())
        await asyncio.sleep(0)  # let the loop run between submits
        return future

    async def replay(self, task_id: str) -> asyncio.Future[Any]:
        """``Client.replay`` (a call to the master, in a thread): the failed task run again
        as a new task; returns its asyncio.Future. ``taskq.ReplayError`` if it cannot be."""
        source = await asyncio.to_thread(self.client.replay, task_id)
        return _bridge(source, asyncio.get_running_loop())

    async def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
                  chunksize: int = 1) -> AsyncIterator[Any]:
        """``async for result in client.map(fn, items)``: results in order; leaving early
        (or an error) cancels the tasks not begun."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        client = self.client
        if chunksize == 1:
            futures = [await self.submit(fn, *args) for args in zip(*iterables, strict=False)]
        else:
            runner, options = chunk_runner(fn), getattr(fn, "taskq_options", None)
            futures = [await self._enqueue(client._prepare(runner, (chunk,), {}, options))
                       for chunk in chunks(iterables, chunksize)]
        try:
            for future in futures:
                result = await future
                if chunksize == 1:
                    yield result
                else:
                    for item in result:
                        yield item
        finally:
            for future in futures:
                future.cancel()

    async def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new task; with ``wait``, return once every task ended (awaited)."""
        if self._client is not None:
            await asyncio.to_thread(self._client.shutdown, wait, cancel_futures=cancel_futures)


def _bridge(source: TaskFuture[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """An asyncio.Future settled from ``source`` (in the loop), whose cancel cancels the
    task (in a thread: it is a call to the master)."""
    target: asyncio.Future[Any] = loop.create_future()

    def settle(_: object) -> None:
        if target.done():
            return
        if source.cancelled():
            target.cancel()
        elif (exc := source.exception()) is not None:
            target.set_exception(exc)
        else:
            target.set_result(source.result())

    def settled(_: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, None)

    def cancelled(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() and not source.done():
            loop.run_in_executor(None, source.cancel)

    target.add_done_callback(cancelled)
    source.add_done_callback(settled)
    return target

