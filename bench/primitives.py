"""``python -m bench.primitives``: shared primitives' round trips, side by side.

    taskq-durable / taskq-memory: a master (journaled, or in memory) and one taskq.Client
    manager: multiprocessing.Manager() (a server process; its Lock and a Value under it)
    dask: a dask.distributed LocalCluster's Lock (and no atomic counter), when installed

Two figures per system, each the best of ``--repeat`` rounds (every system once per round):
an uncontended lock acquire + release, and an atomic counter add, per second, from one
caller. taskq's counter is one call (``add`` returns the new value); the manager's is
``with lock: value.value += 1`` (the only atomic way it has: four round trips). Ratios are
against the manager. Figures go to ``bench/primitives.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import ROOT
from bench.systems import TaskqSystem

DURATION_S = 2.0  # per figure: enough round trips for a steady rate at ~1 ms each
Bench = tuple[Callable[[], None], Callable[[], None]]  # (lock round trip, counter add)


def rate(op: Callable[[], None], seconds: float) -> float:
    """Calls of ``op`` per second over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        op()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            op()
        n += 10
    return n / elapsed


def taskq_ops(system: TaskqSystem) -> Bench:
    lock, counter = system.client.lock("bench-lock"), system.client.counter("bench-counter")

    def lock_rt() -> None:
        lock.acquire()
        lock.release()

    return lock_rt, lambda: counter.add(1) and None


def manager_ops(manager: Any) -> Bench:
    lock, value = manager.Lock(), manager.Value("i", 0)

    def lock_rt() -> None:
        lock.acquire()
        lock.release()

    def add() -> None:
        with lock:
            value.value += 1

    return lock_rt, add


def dask_ops(client: Any) -> Bench:
    from distributed import Lock

    lock = Lock("bench-lock")  # served by the default client's scheduler: ``client``

    def lock_rt() -> None:
        lock.acquire()
        lock.release()

    def no_counter() -> None:
        raise NotImplementedError

    return lock_rt, no_counter


def run_system(name: str, workdir: Path, seconds: float) -> dict[str, float | None]:
    """Start ``name``, measure both figures, stop it."""
    if name.startswith("taskq"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
        system = TaskqSystem(name, name == "taskq-durable", 0, workdir / name)
        try:
            return measure(taskq_ops(system), seconds)
        finally:
            system.shutdown()
    if name == "manager":
        with multiprocessing.Manager() as manager:
            return measure(manager_ops(manager), seconds)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client:
        return measure(dask_ops(client), seconds)


def measure(ops: Bench, seconds: float) -> dict[str, float | None]:
    lock_rt, add = ops
    out: dict[str, float | None] = {"lock_per_s": rate(lock_rt, seconds)}
    try:
        out["counter_add_per_s"] = rate(add, seconds)
    except NotImplementedError:
        out["counter_add_per_s"] = None
    return out


def systems() -> list[str]:
    names = ["taskq-durable", "taskq-memory", "manager"]
    try:
        import distributed  # noqa: F401
    except ImportError:
        return names
    return [*names, "dask"]


def report(best: dict[str, dict[str, float | None]]) -> str:
    base = best["manager"]
    lines = [f"{'system':<15}{'lock acq+rel/s':>16}{'x manager':>11}{'counter add/s':>16}"
             f"{'x manager':>11}"]
    for name, figs in best.items():
        cells = [f"{name:<15}"]
        for key in ("lock_per_s", "counter_add_per_s"):
            value, ref = figs[key], base[key]
            cells.append(f"{value:>16,.0f}" if value else f"{'—':>16}")
            cells.append(f"{value / ref:>10.2f}x" if value and ref else f"{'—':>11}")
        lines.append("".join(cells))
    if "dask" not in best:
        lines.append("dask: not installed (pip install 'taskq[bench]')")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.primitives", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument("--seconds", type=float, default=DURATION_S, help="per figure")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "primitives.json")
    args = parser.parse_args(argv)
    best: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="taskq-bench-prims-") as tmp:
        for _ in range(max(1, args.repeat)):
            for name in systems():
                figs = run_system(name, Path(tmp), args.seconds)
                for key, value in figs.items():
                    old = best.setdefault(name, {}).get(key)
                    best[name][key] = value if old is None or (value or 0) > old else old
    print(report(best))
    args.json.write_text(json.dumps({"figures": best, "seconds": args.seconds,
                                     "repeat": args.repeat}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
