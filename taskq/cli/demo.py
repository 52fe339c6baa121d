"""``taskq demo``: a small real job on a local cluster, narrated."""

from __future__ import annotations

import concurrent.futures
import os
import random
import time

from taskq.client.client import Client


def estimate_pi(samples: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)  # noqa: S311 -- demo data, not a secret
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return inside, os.getpid()


def run(tasks: int, procs: int | None) -> int:
    started = time.perf_counter()
    print("starting a local cluster (a master and a worker on 127.0.0.1) ...", flush=True)
    with Client(procs=procs) as client:
        ready = time.perf_counter()
        print(f"cluster up at {client.address[0]}:{client.address[1]} "
              f"in {ready - started:.2f} s; submitting {tasks} tasks", flush=True)
        futures = [client.submit(estimate_pi, 20_000, seed) for seed in range(tasks)]
        inside, pids = 0, set()
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            hits, pid = future.result()
            inside += hits
            pids.add(pid)
            if done % max(1, tasks // 4) == 0:
                print(f"  {done}/{tasks} tasks done", flush=True)
        elapsed = time.perf_counter() - ready
        print(f"pi ~= {4 * inside / (tasks * 20_000):.5f} from {tasks * 20_000:,} samples, "
              f"{tasks} tasks on {len(pids)} worker processes in {elapsed:.2f} s")
        failing = client.submit(lambda: 1 / 0)
        try:
            failing.result()
        except ZeroDivisionError as exc:
            print(f"a task that raises comes back as itself: ZeroDivisionError({exc})")
    print("local cluster stopped")
    return 0
