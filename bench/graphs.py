"""``python -m bench.graphs``: a task graph, futures as arguments, side by side with Dask.

    root ──► LEAVES x inc(root) ──► (each GROUP of leaves) total ──► total of the totals
             fan-out                 fan-in                          fan-in

10,000 tasks by default (1 root, 9,899 leaves, 99 group totals, 1 final total), every edge
a future passed as an argument, submitted before anything has run, timed from the first
submit to the final result: tasks/s. Then, on a master with no worker, the resident memory
the master grows by per task waiting for a dependency (``--waiting`` dependents of one
root that never runs). Dask's futures run the same graph on a LocalCluster with the same
number of single-threaded worker processes; its scheduler lives in the benchmark's own
process, so its memory per waiting task is not measured (n/a). Each system runs
``--repeat`` rounds and keeps its best.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import tasks
from bench.procs import BenchError, vm_rss, wait_for
from bench.systems import LIMIT_S, available, start_system

GROUP = 100  # leaves per group total
SYSTEMS = ("taskq-durable", "taskq-memory", "dask")


def shape(n: int) -> tuple[int, int]:
    """(leaves, groups) of a graph of ``n`` tasks: 1 + leaves + groups + 1 == n."""
    leaves = n - 2
    while leaves + math.ceil(leaves / GROUP) + 2 > n:
        leaves -= 1
    return leaves, math.ceil(leaves / GROUP)


def run_graph(system: Any, n: int) -> dict[str, float]:
    """Submit the whole graph, then wait for its last task; checks the answer."""
    leaves, _ = shape(n)
    start = time.perf_counter()
    root = system.submit(tasks.inc, 0)
    fanned = [system.submit(tasks.inc, root) for _ in range(leaves)]
    groups = [system.submit(tasks.total, fanned[i:i + GROUP]) for i in range(0, leaves, GROUP)]
    final = system.submit(tasks.total, groups)
    submitted = time.perf_counter() - start
    value = final.result(LIMIT_S)
    elapsed = time.perf_counter() - start
    if value != 2 * leaves:
        raise BenchError(f"{system.name}: the graph's answer is {value}, not {2 * leaves}")
    return {"tasks_per_s": n / elapsed, "elapsed_s": elapsed, "submit_s": submitted}


def waiting_memory(workdir: Path, name: str, n: int) -> dict[str, float]:
    """Master RSS growth per task waiting for a dependency (a master with no worker)."""
    system: Any = start_system(name, 0, workdir)
    try:
        root = system.client.submit(tasks.inc, 0)
        system.client.submit(tasks.noop)  # warm the master's structures up
        wait_for(lambda: sum(system.status()["pending"].values()) >= 2, 60, "warm-up")
        before = vm_rss(system.master.pid)
        for _ in range(n):
            system.client.submit(tasks.inc, root)
        wait_for(lambda: system.status().get("blocked", 0) >= n, 300,
                 f"{n} waiting tasks on the master", every=0.5)
        after = vm_rss(system.master.pid)
        return {"bytes_per_waiting": (after - before) / n, "rss_after_mib": after / 2**20}
    finally:
        system.shutdown()


def measure(name: str, n: int, waiting: int, repeat: int, workers: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taskq-bench-graph-") as tmp:
        for round_ in range(repeat):
            system = start_system(name, workers, Path(tmp) / f"{name}-{round_}")
            try:
                got = run_graph(system, n)
            finally:
                system.shutdown()
            if got["tasks_per_s"] > out.get("tasks_per_s", 0.0):
                out.update(got)
        if name.startswith("taskq") and waiting:
            out.update(waiting_memory(Path(tmp) / f"{name}-memory", name, waiting))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graphs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the graph")
    parser.add_argument("--waiting", type=int, default=10_000,
                        help="dependents held for the memory figure (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="single-process workers")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best is kept")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.tasks < 4:
        parser.error(f"--tasks {args.tasks}: a graph needs at least 4 tasks")
    names = [s for s in args.systems.split(",") if s]
    bad = [s for s in names if s not in SYSTEMS]
    if bad:
        parser.error(f"unknown system {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    results: dict[str, Any] = {}
    for name in names:
        why = available(name)
        if why is not None:
            print(f"{name}: skipped ({why})")
            continue
        results[name] = measure(name, args.tasks, args.waiting, args.repeat, args.workers)
        print(f"{name}: {json.dumps({k: round(v, 3) for k, v in results[name].items()})}")
    print_table(results, args.tasks)
    if args.json is not None:
        args.json.write_text(json.dumps({"tasks": args.tasks, "results": results}, indent=2))
    return 0


def print_table(results: dict[str, Any], n: int) -> None:
    base = results.get("dask", {}).get("tasks_per_s")
    print(f"\nfan-out/fan-in graph of {n:,} tasks")
    print(f"{'system':<15} {'tasks/s':>10} {'x dask':>8} {'B per waiting task':>20}")
    for name, got in results.items():
        ratio = f"{got['tasks_per_s'] / base:.2f}" if base else "n/a"
        memory = got.get("bytes_per_waiting")
        shown = f"{memory:,.0f}" if memory is not None else "n/a"
        print(f"{name:<15} {got['tasks_per_s']:>10,.0f} {ratio:>8} {shown:>20}")


if __name__ == "__main__":
    sys.exit(main())
