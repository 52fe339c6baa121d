"""The systems taskq is measured against, behind the same adapter as ``TaskqSystem``.

- ``processpool``: ``concurrent.futures.ProcessPoolExecutor`` on this machine.
- ``seed``: the classic ``multiprocessing.managers`` task queue that taskq grew from::

      client ── put(cloudpickle((id, fn, args))) ──► [manager: task Queue]  ◄── get() ── worker
      client ◄── get() ── [manager: result Queue] ◄── put((kind, id, value)) ─────────── worker

  one proxy round trip per task on each side, no batching, no acknowledgements. Its server
  and workers run as ``python -m bench.peers server|worker``.
- ``dask``: ``dask.distributed`` LocalCluster with one thread per worker process.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

import cloudpickle

from bench import tasks
from bench.base import LIMIT_S, START_TIMEOUT_S, FutureLike
from bench.procs import BenchError, Helpers, child_env, read_line_with, vm_rss, wait_for

SEED_READY = "seed queue server listening on "
SEED_KEY_ENV = "BENCH_SEED_AUTHKEY"


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    it = iter(items)
    while chunk := [(x,) for x in itertools.islice(it, size)]:
        yield chunk


def chunked_map(system: Any, fn: Callable[..., Any], items: Iterable[Any],
                chunksize: int) -> Iterator[Any]:
    """``map`` for systems without chunking: one ``run_chunk`` task per chunk, in order."""
    futures = [system.submit(tasks.run_chunk, fn, chunk) for chunk in _chunks(items, chunksize)]
    for future in futures:
        yield from future.result(LIMIT_S)


# --------------------------------------------------------------------------- processpool


class ProcessPoolSystem:
    """``ProcessPoolExecutor(workers)`` with the platform's default start method."""

    def __init__(self, workers: int) -> None:
        self.name = "processpool"
        self.procs = workers
        self.pool = ProcessPoolExecutor(workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> FutureLike:
        return self.pool.submit(fn, *args)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: int) -> Iterator[Any]:
        return self.pool.map(fn, items, chunksize=chunksize, timeout=LIMIT_S)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- seed


class SeedManager(BaseManager):
    """Client side of the seed pattern's manager: two proxied queues."""


SeedManager.register("tasks")
SeedManager.register("results")


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def serve_main(host: str, port: int, authkey: bytes) -> None:
    """The seed server process: a manager serving a task queue and a result queue."""
    task_q: queue.Queue[Any] = queue.Queue()
    result_q: queue.Queue[Any] = queue.Queue()

    class _ServerManager(BaseManager):
        pass

    _ServerManager.register("tasks", callable=lambda: task_q)
    _ServerManager.register("results", callable=lambda: result_q)
    server = _ServerManager(address=(host, port), authkey=authkey).get_server()
    bound_host, bound_port = server.address[:2]
    print(f"{SEED_READY}{bound_host}:{bound_port}", flush=True)
    server.serve_forever()


def worker_main(address: tuple[str, int], authkey: bytes) -> None:
    """A seed worker process: get a task, run it, put its result; ``None`` stops it."""
    manager = SeedManager(address=address, authkey=authkey)
    manager.connect()
    task_q, result_q = manager.tasks(), manager.results()  # type: ignore[attr-defined]
    result_q.put(("hello", os.getpid(), None))
    while (blob := task_q.get()) is not None:
        task_id, fn, args = cloudpickle.loads(blob)
        try:
            result_q.put(("ok", task_id, fn(*args)))
        except Exception as exc:
            result_q.put(("error", task_id, exc))


class SeedSystem:
    """The seed pattern driven from this process: futures resolved by a receiver thread."""

    def __init__(self, workers: int, workdir: Path) -> None:
        self.name = "seed"
        self.procs = workers
        self.helpers = Helpers(workdir)
        self.authkey = secrets.token_hex(16)
        self._futures: dict[int, Future[Any]] = {}
        self._ids = itertools.count()
        self._hellos = 0
        self._lock = threading.Lock()
        try:
            self._start(workers)
        except BaseException:
            self.helpers.kill()
            raise

    def _start(self, workers: int) -> None:
        env = child_env({SEED_KEY_ENV: self.authkey})
        self.server = self.helpers.spawn(["-m", "bench.peers", "server"], env, "seed-server",
                                         stdout=subprocess.PIPE)
        address = read_line_with(self.server, SEED_READY, START_TIMEOUT_S)
        for i in range(workers):
            self.helpers.spawn(["-m", "bench.peers", "worker", "--connect", address], env,
                               f"seed-worker{i}")
        manager = SeedManager(address=_address(address), authkey=self.authkey.encode())
        manager.connect()
        self.task_q, self.result_q = manager.tasks(), manager.results()  # type: ignore
        self._receiver = threading.Thread(target=self._receive, name="seed-receive",
                                          daemon=True)
        self._receiver.start()
        wait_for(lambda: self._hellos >= workers, START_TIMEOUT_S,
                 f"{workers} seed workers to connect", every=0.05)

    def _receive(self) -> None:
        while (item := self.result_q.get()) is not None:
            kind, key, value = item
            if kind == "hello":
                with self._lock:
                    self._hellos += 1
                continue
            with self._lock:
                future = self._futures.pop(key)
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(value)

    def submit(self, fn: Callable[..., Any], *args: Any) -> FutureLike:
        task_id = next(self._ids)
        future: Future[Any] = Future()
        with self._lock:
            self._futures[task_id] = future
        self.task_q.put(cloudpickle.dumps((task_id, fn, args)))
        return future

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: int) -> Iterator[Any]:
        return chunked_map(self, fn, items, chunksize)

    def pending_memory(self, fn: Callable[..., Any], n: int) -> dict[str, float]:
        """Server RSS growth while its task queue holds ``n`` tasks (start with no workers)."""
        before = vm_rss(self.server.pid)
        start = time.perf_counter()
        for _ in range(n):
            self.submit(fn)
        elapsed = time.perf_counter() - start
        if self.task_q.qsize() < n:
            raise BenchError("the seed task queue lost tasks")
        after = vm_rss(self.server.pid)
        return {"bytes_per_task": (after - before) / n, "rss_before_mib": before / 2**20,
                "rss_after_mib": after / 2**20, "submit_per_s": n / elapsed}

    def shutdown(self) -> None:
        try:
            for _ in range(self.procs):
                self.task_q.put(None)
            self.result_q.put(None)
            self._receiver.join(10)
        finally:
            self.helpers.stop()


# --------------------------------------------------------------------------- dask


class DaskSystem:
    """A dask.distributed LocalCluster: ``workers`` processes with one thread each."""

    def __init__(self, workers: int) -> None:
        from distributed import Client, LocalCluster

        for name in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)  # failures are reported
        self.name = "dask"
        self.procs = workers
        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    silence_logs=logging.CRITICAL)
        try:
            self.client = Client(self.cluster)
            self.client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        except BaseException:
            self.cluster.close()
            raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> FutureLike:
        return self.client.submit(fn, *args, pure=False)  # type: ignore[no-any-return]

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: int) -> Iterator[Any]:
        return chunked_map(self, fn, items, chunksize)

    def shutdown(self) -> None:
        try:
            self.client.close()
        finally:
            self.cluster.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.peers server [--host H --port P]`` or ``worker --connect H:P``."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help="serve the seed task and result queues")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0)
    worker = sub.add_parser("worker", help="run seed tasks from a server")
    worker.add_argument("--connect", required=True, help="the server as HOST:PORT")
    args = parser.parse_args(argv)
    authkey = os.environ[SEED_KEY_ENV].encode()
    if args.role == "server":
        serve_main(args.host, args.port, authkey)
    else:
        worker_main(_address(args.connect), authkey)


if __name__ == "__main__":
    main()
