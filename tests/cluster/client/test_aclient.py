"""AsyncClient on a real cluster: futures, map in order, cancel, errors, and an event loop
that is never blocked while thousands of tasks come and go."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pool_tasks
import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(180)


class _Pauses:
    """Seconds the process's threads waited for a CPU (the kernel's run delay: other
    processes on a busy machine; the loop also waits while a thread holding the GIL is
    descheduled) and seconds of the interpreter's garbage collections: neither is a call
    blocking the loop, so the probe does not count them."""

    def __init__(self) -> None:
        self.gc_s = 0.0
        self._gc_start = 0.0

    def on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.monotonic()
        else:
            self.gc_s += time.monotonic() - self._gc_start

    def snapshot(self) -> dict[str, int]:
        """Each thread's nanoseconds spent waiting for a CPU."""
        waited: dict[str, int] = {}
        for task in Path("/proc/self/task").iterdir():
            try:
                waited[task.name] = int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError):
                continue  # a thread that ended meanwhile
        return waited

    def since(self, before: dict[str, int], gc_before: float) -> float:
        """Seconds of CPU waits (threads alive at both ends) and collections since then."""
        after = self.snapshot()
        waited = sum(ns - before.get(tid, ns) for tid, ns in after.items())
        return waited / 1e9 + self.gc_s - gc_before


async def _probe(lags: list[float], gc_pauses: list[float], stop: asyncio.Event,
                 every: float = 0.005) -> None:
    """How late each short sleep wakes: the longest the loop was kept from running."""
    pauses = _Pauses()
    gc.callbacks.append(pauses.on_gc)
    try:
        while not stop.is_set():
            start, waits, gc_s = time.monotonic(), pauses.snapshot(), pauses.gc_s
            await asyncio.sleep(every)
            lags.append(time.monotonic() - start - every - pauses.since(waits, gc_s))
            gc_pauses.append(pauses.gc_s - gc_s)
    finally:
        gc.callbacks.remove(pauses.on_gc)


@pytest.mark.slow
def test_ten_thousand_tasks_never_block_the_loop(running: Cluster) -> None:
    async def main() -> tuple[list[int], list[float]]:
        gc.freeze()  # start-up objects are not scanned by every full collection
        async with taskq.AsyncClient(running.address, running.authkey) as client:
            await client.submit(tasks_mod.add, 0, 0)  # warm: the workers loaded the task
            lags: list[float] = []
            gc_pauses: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe(lags, gc_pauses, stop))
            futures = [await client.submit(tasks_mod.add, i, 1) for i in range(10_000)]
            results = await asyncio.gather(*futures)
            stop.set()
            await probe
            print(f"longest garbage collection: {max(gc_pauses) * 1000:.0f} ms, "
                  f"longest lag: {max(lags) * 1000:.0f} ms")
            return results, lags

    try:
        results, lags = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert results == [i + 1 for i in range(10_000)]
    assert len(lags) > 20 and max(lags) < 0.05, f"the loop was blocked {max(lags) * 1000:.0f} ms"


def test_map_in_order_async_tasks_and_errors(running: Cluster) -> None:
    async def main() -> None:
        async with taskq.AsyncClient(running.address, running.authkey) as client:
            got = [r async for r in client.map(tasks_mod.add, range(50), range(50))]
            assert got == [2 * i for i in range(50)]
            chunked = [r async for r in client.map(pool_tasks.async_sleep, [0.0] * 30,
                                                    range(30), chunksize=7)]
            assert chunked == list(range(30))  # async def, in chunks, on process pools
            with pytest.raises(KeyError, match="boom"):
                await (await client.submit(tasks_mod.fail, "boom"))
            with pytest.raises(ValueError, match="chunksize"):
                [r async for r in client.map(tasks_mod.add, [1], chunksize=0)]

    asyncio.run(main())


def test_cancel_a_task_not_begun(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker(procs=1)
    cluster.wait_workers(1)
    marker = tmp_path / "ran"

    async def main() -> None:
        async with taskq.AsyncClient(cluster.address, cluster.authkey) as client:
            first = await client.submit(pool_tasks.blocking_sleep, 1.5, "first")
            queued = await client.submit(pool_tasks.sleep_then_mark, 0, str(marker))
            # cancel once the worker holds both (a cancel that crosses the lease on the
            # wire is answered "running" by a worker that has not seen the task yet)
            await asyncio.to_thread(wait_for, lambda: cluster.status()["workers"][0]["held"]
                                    == 2, 30, "the worker to hold both tasks")
            assert queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert await first == "first"
            third = await client.submit(tasks_mod.add, 1, 2)
            assert await third == 3  # the worker runs in order: the cancelled one is gone

    asyncio.run(main())
    assert not marker.exists()


def test_sync_futures_work_with_wrap_future(running: Cluster) -> None:
    async def main() -> int:
        with running.client() as client:
            return await asyncio.wrap_future(client.submit(tasks_mod.add, 20, 22))

    assert asyncio.run(main()) == 42


def test_not_started_is_one_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(taskq.AsyncClient("127.0.0.1:1", "k").submit(tasks_mod.add, 1))
