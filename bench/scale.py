"""How the master copes with many connected workers: a real master, simulated workers.

    python -m bench scale [--sizes 0,100,1000,3000,10000] [--idle-window 10] [--tasks 10000]
                          [--no-rejoin] [--no-lost] [--validate N]

For each size N a real ``taskq master --in-memory --http off`` (a subprocess, random authkey)
gets N idle simulated workers plus ACTIVE active ones (``bench.scale_sim``: the real protocol,
the same connections and calls as ``taskq worker --procs 1``, no task work; an idle one
holds one connection, an active one two):

    joins/s          N+ACTIVE workers joining at once, until the master lists them all
    idle CPU         the master's utime+stime (/proc/PID/stat) over --idle-window seconds
    threads, RSS     /proc/PID/status Threads; (VmRSS after - before the joins) / workers
    saturated        a Client submits --tasks no-op tasks to the active workers' queue (the
                     idle ones long-poll ``default`` and get none); tasks/s, master CPU per
                     task, p99 submit-to-start (submit to the take that leased it)
    lost worker      an active worker takes a task and goes silent (connections left open):
                     seconds until the master requeues it (another worker's result arrives)
                     and until it no longer lists the worker
    rejoin           a second master with --state in a temporary directory: the same workers
                     join, the master is SIGKILLed and restarted on its port; seconds until it
                     lists every worker again (each reconnects through its Link)

The sweep stops at the first size that cannot be reached in --join-timeout seconds (or whose
master dies), saying why: the master's open files against its limit, its threads, the
simulators' errors. ``--validate 20`` first compares the simulator with 20 real ``taskq worker
--procs 1`` processes (18 idle, 2 active) on master CPU per task (must agree within 25%);
unless --no-rejoin, the real workers' master is then SIGKILLed and restarted on its port, and
the seconds until it lists them all again are reported. Figures go to bench/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import report, scale_api
from bench.procs import (
    ROOT,
    BenchError,
    Helper,
    Helpers,
    child_env,
    install_signal_exit,
    read_line_with,
    vm_rss,
    wait_for,
)
from taskq import defaults
from taskq.errors import ConnectError, MasterError

DEFAULT_JSON = ROOT / "bench" / "scale.json"
READY = "taskq master listening on "
ACTIVE = 2
ACTIVE_QUEUE = "scale"
CONNECTIONS_PER_WORKER = 2
# workers per simulator process: 1,000 in one process (4,000 threads on one GIL) cannot keep
# their heartbeats within the master's lost-after on two cores, and the master drops them all
SIM_WORKERS_PER_PROC = 250
VALIDATE_TOLERANCE = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATUS_EVERY_S = 0.25
GOALS = {  # the event-driven master's targets, shown beside the figures
    "idle_cpu_pct_per_1000": 5.0, "rss_kib_per_worker": 160.0, "cpu_per_task_ratio": 1.25,
    "rejoin_s_at_1000": 30.0,
}


@dataclass
class Options:
    sizes: list[int]
    idle_window: float = 10.0
    tasks: int = 10000
    join_timeout: float = 120.0
    lost_timeout: float = 30.0
    rejoin: bool = True
    lost: bool = True  # measure how long a silent worker takes to be noticed
    validate: int = 0
    lost_after: float | None = None  # the master's --lost-after (None: its default)
    say: Any = print


# ----------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} for pid {pid}")


def open_files(pid: int) -> tuple[int | None, int | None]:
    """(open file descriptors, soft RLIMIT_NOFILE) of a process, None where unreadable."""
    try:
        count: int | None = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        count = None
    limit = None
    with contextlib.suppress(OSError, ValueError, IndexError), \
            open(f"/proc/{pid}/limits") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                limit = int(line.split()[3])
    return count, limit


# ----------------------------------------------------------------------------- processes


class Sim:
    """One simulator process (``bench.scale_sim``): its events and commands."""

    def __init__(self, helper: Helper) -> None:
        self.helper = helper
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.helper.popen.stdout
        assert stdout is not None
        for line in stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.setdefault(event["event"], []).append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.setdefault("exit", []).append({})
            self._cond.notify_all()

    def wait(self, name: str, timeout: float, count: int = 1) -> dict[str, Any]:
        """The ``count``-th event called ``name``; BenchError if it does not come in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events.get(name, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.events.get("exit"):
                    raise BenchError(f"simulator: no {name!r} event within {timeout:g} s "
                                     f"(exit code {self.helper.popen.poll()}): "
                                     f"{self.helper.stderr_tail(800)}")
                self._cond.wait(min(left, 0.5))
            return self.events[name][count - 1]

    def send(self, command: str) -> None:
        stdin = self.helper.popen.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def ask(self, command: str, event: str, timeout: float = 30.0) -> dict[str, Any]:
        with self._cond:
            seen = len(self.events.get(event, []))
        self.send(command)
        return self.wait(event, timeout, seen + 1)


STARTED: list[int] = []  # every process the benchmark started (the JSON lists them)


class Cluster:
    """A master (restartable on its port) and the processes that talk to it; the master
    keeps the open-file limit it is given (this process never raises its own)."""

    def __init__(self, workdir: Path, durable: bool, lost_after: float | None = None,
                 host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host  # the master's address (a bridge's, to reach other namespaces)
        workdir.mkdir(parents=True, exist_ok=True)
        self.helpers = Helpers(workdir)
        self.authkey = secrets.token_hex(16)
        self.env = child_env({"TASKQ_AUTHKEY": self.authkey})
        self.state = ["--state", str(workdir / "journal.db")] if durable else ["--in-memory"]
        self.sims: list[Sim] = []
        self.lost_after = lost_after
        self.port = 0
        self.master = self.start_master()
        self._link: Any = None

    def spawn(self, argv: list[str], name: str, **pipes: Any) -> Helper:
        helper = self.helpers.spawn(argv, self.env, name, **pipes)
        STARTED.append(helper.pid)
        return helper

    def start_master(self) -> Helper:
        lost = [] if self.lost_after is None else ["--lost-after", f"{self.lost_after:g}"]
        helper = self.spawn(
            ["-m", "taskq", "master", "--host", self.host, "--port", str(self.port),
             "--http", "off", "--log-level", "warning", *self.state, *lost], "master",
            stdout=subprocess.PIPE)
        address = read_line_with(helper, READY, 60)
        self.port = int(address.rsplit(":", 1)[1])
        self.master = helper
        return helper

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def link(self) -> Any:
        if self._link is None:
            self._link = scale_api.link((self.host, self.port), self.authkey.encode(), 30.0)
            self._link.open(30.0)
        return self._link

    def drop_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def listed(self) -> list[Any]:
        """The workers the master lists (``taskq status``); none while it cannot answer (a
        master swamped by a crowd rejoining at once is measured, not given up on)."""
        try:
            return list(scale_api.status_of(self.link()).workers)
        except (ConnectError, MasterError):
            self.drop_link()
            return []

    def start_sims(self, idle: int, active: int, join_timeout: float) -> None:
        """Simulators for ``idle`` + ``active`` workers, split so that none runs out of files."""
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # each simulator raises its own
        per_proc = max(1, min(SIM_WORKERS_PER_PROC, (hard - 200) // CONNECTIONS_PER_WORKER))
        total = idle + active
        procs = max(1, math.ceil(total / per_proc))
        for i in range(procs):
            share = idle // procs + (1 if i < idle % procs else 0)
            helper = self.spawn(
                ["-m", "bench.scale_sim", "--connect", self.address, "--workers", str(share),
                 "--active", str(active if i == 0 else 0), "--active-queue", ACTIVE_QUEUE,
                 "--join-within", str(join_timeout)], f"sim{i}",
                stdout=subprocess.PIPE, stdin=subprocess.PIPE)
            self.sims.append(Sim(helper))

    def start_real_workers(self, idle: int, active: int, prefix: tuple[str, ...] = (),
                           name: str = "worker") -> list[Helper]:
        """``taskq worker --procs 1`` processes (run under ``prefix``: another host)."""
        started = []
        for i in range(idle + active):
            queue = ACTIVE_QUEUE if i >= idle else "default"
            started.append(self.spawn(
                ["-m", "taskq", "worker", "--connect", self.address, "--procs", "1",
                 "--queues", queue, "--log-level", "warning"], f"{name}{i}", prefix=prefix))
        return started

    def master_alive(self) -> bool:
        return self.master.popen.poll() is None

    def stop(self) -> None:
        self.drop_link()
        for sim in self.sims:
            with contextlib.suppress(OSError, ValueError):
                sim.send("quit")
        self.helpers.kill()


# ----------------------------------------------------------------------------- phases


class Unreachable(BenchError):
    """A size the master could not reach: the sweep stops here."""


def _why_unreachable(cluster: Cluster, joined: int, total: int, sims_errors: list[str]) -> str:
    parts = [f"{joined} of {total} workers joined"]
    if not cluster.master_alive():
        parts.append(f"the master died (exit code {cluster.master.popen.returncode}): "
                     f"{cluster.master.stderr_tail(400)}")
    else:
        fds, limit = open_files(cluster.master.pid)
        parts.append(f"master open files {fds} of a soft limit of {limit}")
        parts.append(f"master threads {proc_status(cluster.master.pid, 'Threads')}")
        tail = cluster.master.stderr_tail(300).strip()
        if tail:
            parts.append(f"master stderr: ...{tail}")
    if sims_errors:
        parts.append(f"simulator errors: {'; '.join(sims_errors[:2])}")
    return "; ".join(parts)


def join(cluster: Cluster, idle: int, active: int, opts: Options,
         real: bool = False) -> dict[str, Any]:
    """Start the workers and wait until the master lists every one; joins per second."""
    total = idle + active
    start = time.time()
    if real:
        cluster.start_real_workers(idle, active)
    else:
        cluster.start_sims(idle, active, opts.join_timeout)
    errors: list[str] = []
    joined = 0
    begin, end = start, start
    if not real:
        events = []
        for sim in cluster.sims:
            try:
                events.append(sim.wait("joined", opts.join_timeout + 60))
            except BenchError as exc:
                raise Unreachable(_why_unreachable(cluster, 0, total, [str(exc)])) from None
        joined = sum(e["joined"] for e in events)
        errors = [err for e in events for err in e["errors"]]
        begin, end = min(e["begin"] for e in events), max(e["end"] for e in events)
        if joined < total:
            raise Unreachable(_why_unreachable(cluster, joined, total, errors))
    try:
        wait_for(lambda: cluster.master_alive() and len(cluster.listed()) >= total,
                 opts.join_timeout, f"the master to list {total} workers", every=STATUS_EVERY_S)
    except (BenchError, OSError) as exc:
        raise Unreachable(_why_unreachable(cluster, joined, total, [*errors, str(exc)])) from None
    if real:
        end = time.time()
    return {"workers": total, "join_s": end - begin, "joins_per_s": total / max(end - begin,
                                                                               1e-6)}


def idle(cluster: Cluster, rss_before: int, workers: int, window: float) -> dict[str, Any]:
    pid = cluster.master.pid
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)  # the measurement window itself, not a synchronisation
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    rss = vm_rss(pid)
    fds, limit = open_files(pid)
    return {"idle_cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
            "threads": proc_status(pid, "Threads"), "rss_mib": rss / 2**20,
            "rss_kib_per_worker": (rss - rss_before) / 1024 / workers if workers else None,
            "open_files": fds, "nofile_limit": limit}


def saturated(cluster: Cluster, tasks: int, sim: Sim | None) -> dict[str, Any]:
    """A burst of no-op tasks to the active workers: tasks/s, CPU per task, p99 start."""
    import taskq
    from bench.tasks import noop

    fn = taskq.task(queue=ACTIVE_QUEUE)(noop)
    client = taskq.Client(cluster.address, authkey=cluster.authkey.encode())
    try:
        for future in [client.submit(fn) for _ in range(20)]:  # warm-up
            future.result(timeout=60)
        if sim is not None:
            sim.ask("takes", "takes")
        pid = cluster.master.pid
        submitted: dict[str, float] = {}
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        futures = []
        for _ in range(tasks):
            now = time.time()
            future = client.submit(fn)
            submitted[future.task_id] = now
            futures.append(future)
        deadline = time.monotonic() + 180
        for future in futures:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    finally:
        client.shutdown(wait=True)
    out: dict[str, Any] = {"tasks": tasks, "tasks_per_s": tasks / elapsed,
                           "cpu_ms_per_task": 1000.0 * cpu / tasks}
    if sim is not None:
        takes = sim.ask("takes", "takes")["takes"]
        waits = sorted(takes[t] - s for t, s in submitted.items() if t in takes)
        if waits:
            out["p50_start_ms"] = 1000.0 * waits[len(waits) // 2]
            out["p99_start_ms"] = 1000.0 * waits[min(len(waits) - 1, int(0.99 * len(waits)))]
    return out


def lost_worker(cluster: Cluster, sim: Sim, timeout: float) -> dict[str, Any]:
    """One active worker takes a task and goes silent: how long until the master notices."""
    import taskq
    from bench.tasks import noop

    client = taskq.Client(cluster.address, authkey=cluster.authkey.encode())
    try:
        sim.send("freeze")
        future = client.submit(taskq.task(queue=ACTIVE_QUEUE)(noop))
        frozen = sim.wait("frozen", 30)
        future.result(timeout=timeout)
        requeued = time.time() - frozen["t"]
        wait_for(lambda: frozen["worker"] not in {w.worker_id for w in cluster.listed()},
                 timeout, "the master to drop the silent worker", every=0.1)
        dropped = time.time() - frozen["t"]
    finally:
        client.shutdown(wait=True)
    return {"lost_requeue_s": requeued, "lost_unlisted_s": dropped}


def restarted(cluster: Cluster, total: int, opts: Options) -> dict[str, float]:
    """SIGKILL the master, start it again on its port; seconds until all ``total`` workers
    are listed again, from when it listens and from the kill."""
    cluster.drop_link()
    killed = time.time()
    cluster.master.signal_group(signal.SIGKILL)
    cluster.master.popen.wait(30)
    cluster.start_master()
    ready = time.time()
    seen: list[tuple[float, int]] = []  # (seconds since it listens, workers listed)

    def all_back() -> bool:
        seen.append((time.time() - ready, len(cluster.listed())))
        return seen[-1][1] >= total
    try:
        wait_for(all_back, opts.join_timeout, f"{total} workers to rejoin the restarted master",
                 every=STATUS_EVERY_S)
    except BenchError:
        counts = ", ".join(f"{n:,} at {t:.0f} s" for t, n in seen[::max(1, len(seen) // 8)])
        raise BenchError(f"not all {total:,} workers rejoined within {opts.join_timeout:g} s: "
                         f"{counts}; the master used {cpu_seconds(cluster.master.pid):.1f} s "
                         f"of CPU") from None
    back = time.time()
    return {"rejoin_s": back - ready, "rejoin_from_kill_s": back - killed}


def rejoin(workdir: Path, idle_n: int, opts: Options) -> dict[str, Any]:
    """Workers on a durable master; SIGKILL it, restart it on its port; time to all back."""
    cluster = Cluster(workdir, durable=True, lost_after=opts.lost_after)
    try:
        join(cluster, idle_n, ACTIVE, opts)
        try:
            out: dict[str, Any] = dict(restarted(cluster, idle_n + ACTIVE, opts))
        except BenchError as exc:
            dead = [sim.helper for sim in cluster.sims if sim.helper.popen.poll() is not None]
            if dead:
                raise BenchError(f"{exc}; {dead[0].name} exited with code "
                                 f"{dead[0].popen.returncode}: {dead[0].stderr_tail()}") from None
            counts = [sim.ask("count", "count") for sim in cluster.sims]
            errors = [e for c in counts for e in c["errors"]][:3]
            raise BenchError(f"{exc}; the simulators' links that gave up: "
                             f"{sum(c['failed'] for c in counts)} {errors}") from None
        counts = [sim.ask("count", "count") for sim in cluster.sims]
        return {**out, "rejoin_failed": sum(c["failed"] for c in counts)}
    finally:
        cluster.stop()


def one_size(n: int, opts: Options, tmp: Path) -> dict[str, Any]:
    cluster = Cluster(tmp / f"n{n}", durable=False, lost_after=opts.lost_after)
    row: dict[str, Any] = {"idle_workers": n, "active_workers": ACTIVE}
    try:
        rss_before = vm_rss(cluster.master.pid)
        row["threads_before"] = proc_status(cluster.master.pid, "Threads")
        row.update(join(cluster, n, ACTIVE, opts))
        row.update(idle(cluster, rss_before, n + ACTIVE, opts.idle_window))
        row.update(saturated(cluster, opts.tasks, cluster.sims[0]))
        if opts.lost:  # a crowd beats less often, and may be silent LOST_BEATS beats long
            beat = max(defaults.HEARTBEAT_S, (n + ACTIVE) / defaults.MAX_BEATS_PER_S)
            allowed = max(opts.lost_timeout, defaults.LOST_BEATS * beat + opts.lost_timeout)
            row.update(lost_worker(cluster, cluster.sims[0], allowed))
    finally:
        cluster.stop()
    if opts.rejoin:
        row.update(rejoin(tmp / f"n{n}-durable", n, opts))
    return row


def validate(n: int, opts: Options, tmp: Path) -> dict[str, Any]:
    """The simulator against real ``taskq worker`` processes, n workers of each."""
    out: dict[str, Any] = {"workers": n}
    for kind in ("simulated", "real"):
        cluster = Cluster(tmp / f"validate-{kind}", durable=False)
        try:
            rss_before = vm_rss(cluster.master.pid)
            join(cluster, n - ACTIVE, ACTIVE, opts, real=kind == "real")
            figures = idle(cluster, rss_before, n, opts.idle_window)
            figures.update(saturated(cluster, opts.tasks, None))
            if kind == "real" and opts.rejoin:  # real processes back on a restarted master
                figures.update(restarted(cluster, n, opts))
        finally:
            cluster.stop()
        out[kind] = {k: figures[k] for k in ("idle_cpu_pct", "threads", "tasks_per_s",
                                             "cpu_ms_per_task", "rejoin_s") if k in figures}
    ratio = out["simulated"]["cpu_ms_per_task"] / out["real"]["cpu_ms_per_task"]
    out["cpu_per_task_ratio"] = ratio
    out["within_tolerance"] = abs(ratio - 1.0) <= VALIDATE_TOLERANCE
    return out


def run(opts: Options) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    stopped: dict[str, Any] | None = None
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taskq-scale-") as name:
        tmp = Path(name)
        if opts.validate:
            opts.say(f"validating the simulator against {opts.validate} real workers ...")
            out["validation"] = validate(opts.validate, opts, tmp)
        for n in opts.sizes:
            opts.say(f"N = {n} idle simulated workers (+{ACTIVE} active) ...")
            started = time.perf_counter()
            try:
                rows.append(one_size(n, opts, tmp))
            except Unreachable as exc:
                stopped = {"size": n, "reason": str(exc)}
                opts.say(f"stopped at N = {n}: {exc}")
                break
            opts.say(f"  done in {time.perf_counter() - started:.0f} s")
    base = next((r for r in rows if r["idle_workers"] == 0), None)
    for row in rows:
        if base is not None and row["idle_workers"]:
            # None where the burst was too short for the CPU clock's ticks to see it
            row["cpu_per_task_vs_none"] = (row["cpu_ms_per_task"] / base["cpu_ms_per_task"]
                                           if base["cpu_ms_per_task"] else None)
            extra = row["idle_cpu_pct"] - base["idle_cpu_pct"]
            row["idle_cpu_pct_per_1000"] = 1000.0 * extra / row["idle_workers"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out.update({"sizes": rows, "stopped": stopped, "goals": GOALS, "active_workers": ACTIVE,
                "master_nofile": [soft, hard], "pids": list(STARTED)})
    return out


# ----------------------------------------------------------------------------- report


COLUMNS = (
    ("idle_workers", "idle workers", "{:,}"),
    ("joins_per_s", "joins/s", "{:,.0f}"),
    ("idle_cpu_pct", "idle CPU %", "{:.1f}"),
    ("idle_cpu_pct_per_1000", "% per 1k", "{:.1f}"),
    ("threads", "threads", "{:,}"),
    ("open_files", "fds", "{:,}"),
    ("rss_mib", "RSS MiB", "{:.1f}"),
    ("rss_kib_per_worker", "KiB/worker", "{:.0f}"),
    ("tasks_per_s", "tasks/s", "{:,.0f}"),
    ("cpu_ms_per_task", "CPU ms/task", "{:.3f}"),
    ("cpu_per_task_vs_none", "vs N=0", "{:.2f}"),
    ("p99_start_ms", "p99 start ms", "{:.1f}"),
    ("lost_requeue_s", "lost: requeue s", "{:.1f}"),
    ("lost_unlisted_s", "lost: unlisted s", "{:.1f}"),
    ("rejoin_s", "rejoin s", "{:.1f}"),
)


def table(out: dict[str, Any]) -> Table:
    tab = Table(title="taskq master at scale (simulated workers)")
    for _, label, _ in COLUMNS:
        tab.add_column(label, justify="right")
    for row in out["sizes"]:
        tab.add_row(*[fmt.format(row[key]) if row.get(key) is not None else "-"
                      for key, _, fmt in COLUMNS])
    return tab


def print_report(console: Console, out: dict[str, Any]) -> None:
    check = out.get("validation")
    if check:
        sim, real = check["simulated"], check["real"]
        console.print(
            f"simulator vs real workers at N = {check['workers']}: master CPU per task "
            f"{sim['cpu_ms_per_task']:.3f} ms vs {real['cpu_ms_per_task']:.3f} ms "
            f"(ratio {check['cpu_per_task_ratio']:.2f}, "
            f"{'within' if check['within_tolerance'] else 'OUTSIDE'} ±25%); idle CPU "
            f"{sim['idle_cpu_pct']:.1f}% vs {real['idle_cpu_pct']:.1f}%; tasks/s "
            f"{sim['tasks_per_s']:,.0f} vs {real['tasks_per_s']:,.0f}"
            + (f"; all {check['workers']} real workers back on a restarted master in "
               f"{real['rejoin_s']:.1f} s" if "rejoin_s" in real else ""))
    console.print(table(out))
    if out["stopped"]:
        console.print(f"[yellow]sweep stopped at N = {out['stopped']['size']}[/]: "
                      f"{out['stopped']['reason']}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100,1000,3000,10000", metavar="N[,N]",
                        help="idle simulated workers per step (default: 0,100,1000,3000,10000)")
    parser.add_argument("--idle-window", type=float, default=10.0, metavar="S",
                        help="seconds the idle master's CPU is measured over (default: 10)")
    parser.add_argument("--tasks", type=int, default=10000,
                        help="no-op tasks in the saturated burst (default: 10000: the master "
                             "spends tens of µs on each, and its CPU time is counted in 10 ms "
                             "ticks)")
    parser.add_argument("--join-timeout", type=float, default=120.0, metavar="S",
                        help="a size not joined within this many seconds stops the sweep")
    parser.add_argument("--no-rejoin", action="store_true",
                        help="skip the restart (durable master) measurement")
    parser.add_argument("--no-lost", action="store_true",
                        help="skip the silent-worker measurement (LOST_BEATS heartbeat "
                             "intervals: 10 minutes at 10,000 workers)")
    parser.add_argument("--validate", type=int, default=20, metavar="N",
                        help="first compare with N real workers (0: skip; default: 20)")
    parser.add_argument("--lost-after", type=float, metavar="S",
                        help="the master's --lost-after (default: the master's own)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write the figures (default: bench/scale.json)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes takes whole numbers, e.g. 0,100,1000")
    if any(s < 0 for s in args.sizes) or (args.validate and args.validate <= ACTIVE):
        parser.error(f"sizes must be >= 0 and --validate above {ACTIVE} (or 0)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    install_signal_exit()
    console = Console(width=max(Console().width, 190))
    opts = Options(sizes=args.sizes, idle_window=args.idle_window, tasks=args.tasks,
                   join_timeout=args.join_timeout, rejoin=not args.no_rejoin,
                   lost=not args.no_lost,
                   validate=args.validate, lost_after=args.lost_after, say=console.print)
    load_start = os.getloadavg()
    started = time.perf_counter()
    out = run(opts)
    print_report(console, out)
    out.update({"machine": report.machine(), "command": "python -m bench scale " + " ".join(argv),
                "elapsed_s": round(time.perf_counter() - started, 1),
                "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
                "when": time.time()})
    args.json.write_text(json.dumps(out, indent=2, default=str))
    console.print(f"figures written to {args.json}")
    return 0
