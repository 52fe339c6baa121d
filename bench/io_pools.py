"""``python -m bench.io_pools``: I/O-bound work on each taskq pool, beside local peers.

    2,000 tasks of a 50 ms sleep (``time.sleep`` on threads and processes, ``asyncio.sleep``
    on the asyncio pool), each system in turn on this machine:
      taskq-processes  one worker, --pool processes --procs 2
      taskq-threads    one worker, --pool threads --concurrency 200
      taskq-asyncio    one worker, --pool asyncio (1,000 at once)
      threadpool       concurrent.futures.ThreadPoolExecutor(200), in this process
      gather           asyncio.gather of the 2,000 sleeps, in this process
    and the latency of 300 sequential submit(noop).result() on each taskq pool against a
    ProcessPoolExecutor(2): p50 in µs and its ratio to ProcessPoolExecutor's.

Figures are printed and written to ``bench/results-io.json``; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.procs import ROOT, Helpers, child_env, read_line_with, wait_for
from bench.tasks import anap, nap, noop

READY = "taskq master listening on "
POOLS = {"taskq-processes": ["--pool", "processes", "--procs", "2"],
         "taskq-threads": ["--pool", "threads", "--concurrency", "200"],
         "taskq-asyncio": ["--pool", "asyncio"]}


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _latency_us(submit: Callable[[], Any], n: int) -> dict[str, float]:
    for _ in range(10):  # warm
        submit().result(60)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        submit().result(60)
        times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    return {"p50_us": statistics.median(times), "p99_us": times[int(0.99 * (n - 1))]}


def _taskq(pool: list[str], tasks: int, seconds: float, pings: int) -> dict[str, float]:
    import taskq

    with tempfile.TemporaryDirectory() as tmp:
        helpers = Helpers(Path(tmp))
        key = secrets.token_hex(16)
        env = child_env({"TASKQ_AUTHKEY": key, "TASKQ_STATE_DIR": tmp})
        try:
            master = helpers.spawn(["-m", "taskq", "master", "--host", "127.0.0.1", "--port",
                                    "0", "--in-memory", "--log-level", "warning"], env,
                                   "master", stdout=subprocess.PIPE)
            address = read_line_with(master, READY, 60)
            helpers.spawn(["-m", "taskq", "worker", "--connect", address, *pool,
                           "--log-level", "warning"], env, "worker")
            with taskq.Client(address, key) as client:
                wait_for(lambda: client.submit(noop).result(60) is None, 60, "a worker")
                fn = anap if "asyncio" in pool else nap
                elapsed = _timed(lambda: [f.result(300) for f in
                                          [client.submit(fn, seconds) for _ in range(tasks)]])
                return {"elapsed_s": elapsed, "tasks_per_s": tasks / elapsed,
                        **_latency_us(lambda: client.submit(noop), pings)}
        finally:
            helpers.stop()


def _local(executor: Executor, tasks: int, seconds: float) -> dict[str, float]:
    with executor:
        elapsed = _timed(lambda: list(executor.map(nap, [seconds] * tasks)))
    return {"elapsed_s": elapsed, "tasks_per_s": tasks / elapsed}


def _gather(tasks: int, seconds: float) -> dict[str, float]:
    async def main() -> None:
        await asyncio.gather(*(anap(seconds) for _ in range(tasks)))

    elapsed = _timed(lambda: asyncio.run(main()))
    return {"elapsed_s": elapsed, "tasks_per_s": tasks / elapsed}


def run(tasks: int, seconds: float, pings: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, pool in POOLS.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        out[name] = _taskq(pool, tasks, seconds, pings)
    out["threadpool"] = _local(ThreadPoolExecutor(200), tasks, seconds)
    out["gather"] = _gather(tasks, seconds)
    with ProcessPoolExecutor(2) as pp:
        out["processpool"] = _latency_us(lambda: pp.submit(noop), pings)
    base = out["processpool"]["p50_us"]
    for name in POOLS:
        out[name]["p50_vs_processpool"] = out[name]["p50_us"] / base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results-io.json")
    args = parser.parse_args()
    figures = run(args.tasks, args.seconds, args.pings)
    ideal = args.tasks * args.seconds
    print(f"{'system':18} {'elapsed s':>10} {'tasks/s':>9} {'p50 µs':>9} {'p50 / pp':>9}")
    for name, row in figures.items():
        print(f"{name:18} {row.get('elapsed_s', float('nan')):10.2f} "
              f"{row.get('tasks_per_s', float('nan')):9.0f} "
              f"{row.get('p50_us', float('nan')):9.0f} "
              f"{row.get('p50_vs_processpool', float('nan')):9.2f}")
    print(f"(one task after another would take {ideal:.0f} s)")
    args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
