"""``Client.map``: many calls of one function, their results in order; with ``chunksize``,
items travel (and run) in chunks, one task each.

    map(fn, items, chunksize=n) ── chunks(items, n) ──► one task per chunk: chunk_runner(fn)
        (in a worker: [fn(*args) for args in chunk], an async def awaited)
    results ◄── in order, a chunk's flattened ◄── futures; on an error, or when the caller
        stops early, the tasks not begun yet are cancelled (one call to the master)

``chunk_runner`` and ``chunks`` serve ``AsyncClient.map`` too.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from taskq.client.future import TaskFuture
from taskq.protocol import bodies
from taskq.protocol.messages import TaskOptions
from taskq.protocol.options import TaskFunction


def _run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [fn(*args) for args in chunk]


async def _run_chunk_async(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [await fn(*args) for args in chunk]


def chunk_runner(fn: Callable[..., Any]) -> bytes:
    """The encoded task that runs ``fn`` over a chunk of items (awaiting an async def)."""
    inner = fn.fn if isinstance(fn, TaskFunction) else fn
    run = _run_chunk_async if inspect.iscoroutinefunction(inner) else _run_chunk
    return bodies.encode_function(partial(run, inner))


def chunks(iterables: tuple[Iterable[Any], ...], size: int) -> Iterator[list[tuple[Any, ...]]]:
    it = zip(*iterables, strict=False)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Mapping:
    """The map half of ``taskq.Client`` (which provides what is declared here)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture[Any]:
        raise NotImplementedError  # pragma: no cover

    def _submit(self, fn: bytes, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: TaskOptions | None) -> TaskFuture[Any]:
        raise NotImplementedError  # pragma: no cover

    if TYPE_CHECKING:  # from CancelCalls (a stub here would come first in the Client's MRO)
        def _cancel_futures(self, futures: list[TaskFuture[Any]]) -> None: ...

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        """Like ``Executor.map``; ``chunksize`` items travel (and run) as one task."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        if chunksize == 1:
            calls = zip(*iterables, strict=False)
            return self._ordered([self.submit(fn, *args) for args in calls], timeout)
        options = getattr(fn, "taskq_options", None)
        runner = chunk_runner(fn)
        fs = [self._submit(runner, (chunk,), {}, options)
              for chunk in chunks(iterables, chunksize)]
        return _items(self._ordered(fs, timeout))

    def _ordered(self, fs: list[TaskFuture[Any]], timeout: float | None) -> Iterator[Any]:
        """Results in order; on an error (or when the caller stops early) the tasks not
        begun yet are cancelled, in one call to the master. Each future is let go as its
        result is yielded, so the iterator keeps no result the caller has had."""
        end = None if timeout is None else time.monotonic() + timeout
        fs.reverse()
        try:
            while fs:
                yield fs.pop().result(None if end is None else end - time.monotonic())
        finally:
            rest = [f for f in fs if not f.done()]
            if rest:
                self._cancel_futures(rest)


def _items(results: Iterator[list[Any]]) -> Iterator[Any]:
    """Each chunk's items in order, each let go as it is yielded."""
    for chunk in results:
        chunk.reverse()
        while chunk:
            yield chunk.pop()
