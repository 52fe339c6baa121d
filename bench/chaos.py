"""Killing the master, measured: nothing lost, nothing run twice, how soon it answers again.

    python -m bench chaos [--tasks 10000] [--kills 5] [--tick-kills 20]
                          [--kill-workers-every S] [--json PATH]

Two runs on a durable master (a journal) started again on its port after each SIGKILL:

    tasks     two ``taskq worker --procs 1`` and a ``Client`` submitting TASKS tasks that
              each leave a file per run (``bench.tasks.record_run``); the master is
              SIGKILLed KILLS times, evenly over the run, under load; with
              --kill-workers-every, a worker (its pool too) is SIGKILLed that often and
              another started in its place
    schedule  one worker and a schedule ``every 1 s``; the master is SIGKILLed TICK_KILLS
              times, at a point drawn in each second (ticks go out while it restores)

Counted: tasks whose future failed (lost), tasks or ticks that ran more than once, of those
the ones that ran more than once in processes that were not killed (avoidable: a restart
or taskq itself caused it), tasks that never ran, and per master kill the seconds from the
SIGKILL to the first result after it (recovery).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import tasks
from bench.procs import ROOT, BenchError, install_signal_exit, wait_for
from bench.scale import Cluster

DEFAULT_JSON = ROOT / "bench" / "chaos.json"
TASK_S = 0.002  # each task's own work: 10,000 of them keep two workers busy ~10 s


def runs_by_task(directory: Path) -> Counter[str]:
    """How many times each task (or tick) ran: one file per run."""
    return Counter(name.split("~", 1)[0] for name in os.listdir(directory))


def avoidable_reruns(directory: Path, killed: set[int]) -> int:
    """Tasks that ran more than once in processes that were not killed: a second run a
    killed worker forced is no fault of taskq's, any other is."""
    survivors: Counter[str] = Counter()
    for name in os.listdir(directory):
        task_id, pid, _ = name.split("~")
        survivors[task_id] += int(pid) not in killed
    return sum(1 for runs in survivors.values() if runs > 1)


def group_of(pgid: int) -> set[int]:
    """The processes of a process group (a worker, its forkserver and pool processes)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.add(int(entry))
    return pids


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


def tasks_run(workdir: Path, n: int, kills: int, worker_every: float = 0.0) -> dict[str, Any]:
    import taskq

    cluster = Cluster(workdir / "tasks", durable=True)
    marks = workdir / "task-runs"
    marks.mkdir()
    try:
        cluster.start_real_workers(2, 0)
        wait_for(lambda: len(cluster.listed()) >= 2, 60, "two workers")
        cluster.drop_link()
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
            killer = WorkerKiller(cluster, worker_every)
            with killer:
                _kill_masters(cluster, done, n, kills, recoveries)
            lost = sum(1 for f in futures if f.exception(300) is not None)
        finally:
            client.shutdown(wait=False)
        runs = runs_by_task(marks)
        return {"tasks": n, "kills": kills, "worker_kills": killer.kills, "lost": lost,
                "never_ran": n - len(runs), "ran_twice": sum(1 for c in runs.values() if c > 1),
                "avoidable_reruns": avoidable_reruns(marks, killer.killed),
                "recovery": recoveries,
                "recovery_max_s": max(r["kill_to_result_s"] for r in recoveries)}
    finally:
        cluster.stop()


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
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH")
    args = parser.parse_args(argv)
    if args.tasks < 100 or args.kills < 1 or args.tick_kills < 0:
        parser.error("--tasks must be at least 100 and --kills at least 1")
    install_signal_exit()
    with tempfile.TemporaryDirectory(prefix="taskq-chaos-") as tmp:
        try:
            out = {"tasks": tasks_run(Path(tmp), args.tasks, args.kills,
                                      args.kill_workers_every)}
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
          f"twice ({t['avoidable_reruns']} in processes not killed); recovery "
          f"(SIGKILL to the next result) median "
          f"{statistics.median(r['kill_to_result_s'] for r in t['recovery']):.2f} s, "
          f"max {t['recovery_max_s']:.2f} s")
    if "schedule" in out:
        s = out["schedule"]
        print(f"every-1 s schedule, {s['kills']} master SIGKILLs: {s['ticks']} ticks, "
              f"{s['ran_twice']} ran twice")
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0
