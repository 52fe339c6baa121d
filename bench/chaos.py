"""Killing the master, measured: nothing lost, nothing run twice, how soon it answers again.

    python -m bench chaos [--tasks 10000] [--kills 5] [--tick-kills 20]
                          [--kill-workers-every S] [--partition S] [--json PATH]

Two runs on a durable master (a journal) started again on its port after each SIGKILL:

    tasks     two ``taskq worker --procs 1`` and a ``Client`` submitting TASKS tasks that
              each leave a file per run (``bench.tasks.record_run``); the master is
              SIGKILLed KILLS times, evenly over the run, under load; with
              --kill-workers-every, a worker (its pool too) is SIGKILLed that often and
              another started in its place; with --partition, a third worker runs on a
              host of its own (``bench.netns``, root only), cut off from the master for
              S seconds a second into the kills
    schedule  one worker and a schedule ``every 1 s``; the master is SIGKILLed TICK_KILLS
              times, at a point drawn in each second (ticks go out while it restores)

Counted: tasks whose future failed (lost), tasks or ticks that ran more than once, of those
the ones that ran more than once in processes that were neither killed nor cut off
(avoidable: a restart or taskq itself caused it), tasks that never ran, and per master kill
the seconds from the SIGKILL to the first result after it (recovery).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import tasks
from bench.netns import Net
from bench.procs import ROOT, BenchError, install_signal_exit, process_stats, wait_for
from bench.scale import Cluster

DEFAULT_JSON = ROOT / "bench" / "chaos.json"
TASK_S = 0.002  # each task's own work: 10,000 of them keep two workers busy ~10 s


def runs_by_task(directory: Path) -> Counter[str]:
    """How many times each task (or tick) ran: one file per run."""
    return Counter(name.split("~", 1)[0] for name in os.listdir(directory))


def avoidable_reruns(directory: Path, forced: set[int]) -> int:
    """Tasks that ran more than once in processes that were not ``forced`` (killed, or cut
    off longer than the master waits for a silent worker): a second run such a worker
    forced is no fault of taskq's, any other is."""
    survivors: Counter[str] = Counter()
    for name in os.listdir(directory):
        task_id, pid, _ = name.split("~")
        survivors[task_id] += int(pid) not in forced
    return sum(1 for runs in survivors.values() if runs > 1)


def reruns_touching(directory: Path, pids: set[int]) -> int:
    """Tasks that ran more than once, one of those runs in one of ``pids``."""
    runs: Counter[str] = Counter()
    touched: set[str] = set()
    for name in os.listdir(directory):
        task_id, pid, _ = name.split("~")
        runs[task_id] += 1
        if int(pid) in pids:
            touched.add(task_id)
    return sum(1 for task_id in touched if runs[task_id] > 1)


def group_of(pgid: int) -> set[int]:
    """The processes of a process group (a worker, its forkserver and pool processes)."""
    return {pid for pid, fields in process_stats() if int(fields[2]) == pgid}


class WorkerKiller:
    """SIGKILLs a worker (its whole group) every ``every`` seconds and starts another in its
    place; remembers every process it killed."""

    def __init__(self, cluster: Cluster, every: float) -> None:
        self.cluster, self.every = cluster, every
        self.killed: set[int] = set()
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerKiller:
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        draw = random.Random(11)
        while not self._stop.wait(self.every):
            workers = [h for h in self.cluster.helpers.items
                       if h.name.startswith("worker") and h.popen.poll() is None]
            if not workers:
                continue
            victim = draw.choice(workers)
            self.killed |= group_of(victim.pid)
            victim.signal_group(signal.SIGKILL)
            victim.popen.wait(30)
            self.kills += 1
            self.cluster.start_real_workers(1, 0)


class Partition:
    """Cuts the worker on the namespace host off from the master ``after`` s into the
    kills, for ``seconds``, then heals the link; remembers that worker's processes."""

    def __init__(self, net: Net | None, worker: Any, seconds: float, after: float = 1.0) -> None:
        self.net, self.worker, self.seconds, self.after = net, worker, seconds, after
        self.cut_off: set[int] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Partition:
        if self.net is not None:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread.is_alive():
            self._thread.join(self.after + self.seconds + 30)

    def _run(self) -> None:
        assert self.net is not None
        time.sleep(self.after)  # a point in time to act at, not a wait for a condition
        self.cut_off = group_of(self.worker.pid)
        self.net.cut()
        try:
            time.sleep(self.seconds)
        finally:
            self.net.heal()


@contextlib.contextmanager
def host_of_its_own(enabled: bool) -> Iterator[Net | None]:
    """A namespace host to cut off (None unless ``enabled``); removed after."""
    if not enabled:
        yield None
        return
    net = Net()
    try:
        net.up()
    except (OSError, subprocess.CalledProcessError) as exc:
        net.down()
        raise BenchError(f"--partition needs network namespaces (root and ip): {exc}") from None
    try:
        yield net
    finally:
        net.down()


def _since(done: list[float], at: float) -> list[float]:
    return [t for t in list(done) if t > at]


def _reached(done: list[float], goal: int) -> bool:
    return len(done) >= goal


def restart(cluster: Cluster) -> tuple[float, float]:
    """SIGKILL the master and start it again on its port and journal; (killed, listening)."""
    killed = time.time()
    cluster.master.signal_group(signal.SIGKILL)
    cluster.master.popen.wait(30)
    cluster.start_master()
    return killed, time.time()


def tasks_run(workdir: Path, n: int, kills: int, worker_every: float = 0.0,
              partition: float = 0.0) -> dict[str, Any]:
    with host_of_its_own(partition > 0) as net:
        cluster = Cluster(workdir / "tasks", durable=True,
                          host=net.master_ip if net is not None else "127.0.0.1")
        marks = workdir / "task-runs"
        marks.mkdir()
        try:
            cluster.start_real_workers(2, 0)
            cut = cluster.start_real_workers(1, 0, prefix=net.prefix, name="cutoff") \
                if net is not None else [None]
            wait_for(lambda: len(cluster.listed()) >= 2 + (net is not None), 60, "the workers")
            cluster.drop_link()
            killer = WorkerKiller(cluster, worker_every)
            partitioner = Partition(net, cut[0], partition)
            out = _run_tasks(cluster, marks, n, kills, killer, partitioner)
        finally:
            cluster.stop()
    runs = runs_by_task(marks)
    return {**out, "tasks": n, "kills": kills, "worker_kills": killer.kills,
            "never_ran": n - len(runs), "ran_twice": sum(1 for c in runs.values() if c > 1),
            "avoidable_reruns": avoidable_reruns(marks, killer.killed | partitioner.cut_off),
            "partition_s": partition,
            "partition_reruns": reruns_touching(marks, partitioner.cut_off)}


def _run_tasks(cluster: Cluster, marks: Path, n: int, kills: int, killer: WorkerKiller,
               partitioner: Partition) -> dict[str, Any]:
    """Submit ``n`` tasks, SIGKILL the master ``kills`` times meanwhile (and workers, and
    cut one off, as told); lost tasks and each recovery."""
    import taskq

    done: list[float] = []
    lock = threading.Lock()

    def finished(_f: object) -> None:
        with lock:
            done.append(time.time())

    client = taskq.Client(cluster.address, cluster.authkey.encode(), reconnect_for=120)
    try:
        futures = []
        for _ in range(n):
            future = client.submit(tasks.record_run, str(marks), TASK_S)
            future.add_done_callback(finished)
            futures.append(future)
        wait_for(lambda: len(done) >= n // (kills + 1), 120, "the first results")
        recoveries: list[dict[str, float]] = []
        with killer, partitioner:
            _kill_masters(cluster, done, n, kills, recoveries)
        lost = sum(1 for f in futures if f.exception(300) is not None)
    finally:
        client.shutdown(wait=False)
    return {"lost": lost, "recovery": recoveries,
            "recovery_max_s": max(r["kill_to_result_s"] for r in recoveries)}


def _kill_masters(cluster: Cluster, done: list[float], n: int, kills: int,
                  recoveries: list[dict[str, float]]) -> None:
    """SIGKILL the master ``kills`` times, evenly over the run, timing each recovery."""
    for k in range(kills):
        killed, listening = restart(cluster)
        # a result done after the new master listens came through it (one done just after
        # the kill may have been fetched before it)
        after = wait_for(functools.partial(_since, done, listening), 120,
                         "a result after the restart")
        recoveries.append({"kill_to_result_s": min(after) - killed,
                           "listening_to_result_s": min(after) - listening})
        goal = min(n, n * (k + 2) // (kills + 1))
        wait_for(functools.partial(_reached, done, goal), 300, "results between kills")


def schedule_run(workdir: Path, kills: int) -> dict[str, Any]:
    import taskq

    cluster = Cluster(workdir / "schedule", durable=True)
    marks = workdir / "tick-runs"
    marks.mkdir()
    try:
        cluster.start_real_workers(1, 0)
        with taskq.Client(cluster.address, cluster.authkey.encode()) as client:
            client.schedule("chaos", tasks.record_run, str(marks), every=1.0)
        wait_for(lambda: len(runs_by_task(marks)) >= 2, 60, "the first ticks")
        draw = random.Random(7)
        for _ in range(kills):
            time.sleep(draw.uniform(0.5, 1.5))  # somewhere in the next tick's second
            restart(cluster)
        seen = len(runs_by_task(marks))
        wait_for(lambda: len(runs_by_task(marks)) >= seen + 2, 60, "ticks after the last kill")
        runs = runs_by_task(marks)
        return {"kills": kills, "ticks": len(runs),
                "ran_twice": sum(1 for c in runs.values() if c > 1)}
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chaos",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--tick-kills", type=int, default=20)
    parser.add_argument("--kill-workers-every", type=float, default=0.0, metavar="S",
                        help="also SIGKILL a worker every S seconds (another takes its place)")
    parser.add_argument("--partition", type=float, default=0.0, metavar="S",
                        help="also cut a third worker off from the master for S seconds "
                             "(a host of its own: needs root and network namespaces)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH")
    args = parser.parse_args(argv)
    if args.tasks < 100 or args.kills < 1 or args.tick_kills < 0:
        parser.error("--tasks must be at least 100 and --kills at least 1")
    install_signal_exit()
    with tempfile.TemporaryDirectory(prefix="taskq-chaos-") as tmp:
        try:
            out = {"tasks": tasks_run(Path(tmp), args.tasks, args.kills,
                                      args.kill_workers_every, args.partition)}
            print(json.dumps(out["tasks"]), flush=True)
            if args.tick_kills:
                out["schedule"] = schedule_run(Path(tmp), args.tick_kills)
                print(json.dumps(out["schedule"]), flush=True)
        except BenchError as exc:
            print(f"bench chaos: {exc}", file=sys.stderr)
            return 1
    t = out["tasks"]
    print(f"{t['tasks']} tasks, {t['kills']} master SIGKILLs, {t['worker_kills']} worker "
          f"SIGKILLs: {t['lost']} lost, {t['never_ran']} never ran, {t['ran_twice']} ran "
          f"twice ({t['avoidable_reruns']} in processes neither killed nor cut off, "
          f"{t['partition_reruns']} touching the worker cut off for {t['partition_s']:g} s); "
          f"recovery "
          f"(SIGKILL to the next result) median "
          f"{statistics.median(r['kill_to_result_s'] for r in t['recovery']):.2f} s, "
          f"max {t['recovery_max_s']:.2f} s")
    if "schedule" in out:
        s = out["schedule"]
        print(f"every-1 s schedule, {s['kills']} master SIGKILLs: {s['ticks']} ticks, "
              f"{s['ran_twice']} ran twice")
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0
