"""Run the chosen workloads on the chosen systems, side by side, and collect every figure.

    for each of --repeat rounds:              (a noisy spell on the machine then hits
        for each system:                       every system, not the one running then)
            for each group of workloads needing the same number of workers:
                start the system ─ warm up ─ run each workload once, keep the best so far
                ─ stop the system (every helper process, by process group)

Systems run one at a time: they share two cores. Workloads of the "server" group (the
master's memory) run in the first round only.

A system that cannot start, or a workload that fails, is recorded as an error string in
place of its figures; the other runs go on.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from bench.procs import StealMeter
from bench.systems import System, available, start_system
from bench.workloads import Metrics, Sizes, Workload, warm_up

Outcome = Metrics | str  # figures, or why there are none
MIB_PER_DASK_WORKER = 400  # rough resident size of one dask worker and its nanny


@dataclass
class Results:
    """Figures by system, then workload; a string where there are none."""

    by_system: dict[str, dict[str, Outcome]] = field(default_factory=dict)

    def put(self, system: str, workload: str, outcome: Outcome) -> None:
        self.by_system.setdefault(system, {})[workload] = outcome

    def get(self, system: str, workload: str) -> Outcome | None:
        return self.by_system.get(system, {}).get(workload)

    def figure(self, system: str, workload: str, metric: str) -> float | None:
        outcome = self.get(system, workload)
        return outcome.get(metric) if isinstance(outcome, dict) else None


def _mem_available_mib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def skip_reason(system: str, workload: Workload, sizes: Sizes) -> str | None:
    """Why ``workload`` is not run on ``system`` (None when it is)."""
    if workload.systems is not None and system not in workload.systems:
        return "n/a"
    if system == "dask" and workload.group == "scale":
        need = workload.workers(sizes) * MIB_PER_DASK_WORKER
        if _mem_available_mib() < need:
            return f"skipped: needs ~{need} MiB"
    return None


def _groups(workloads: list[Workload]) -> list[list[Workload]]:
    order: dict[str, list[Workload]] = {}
    for workload in workloads:
        order.setdefault(workload.group, []).append(workload)
    return list(order.values())


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {str(exc).strip()[:300]}"


class Runner:
    """Runs workloads and reports progress through ``say``."""

    def __init__(self, sizes: Sizes, repeat: int, say: Callable[[str], None]) -> None:
        self.sizes = sizes
        self.repeat = max(1, repeat)
        self.say = say
        self.results = Results()

    def run(self, systems: list[str], workloads: list[Workload]) -> Results:
        with tempfile.TemporaryDirectory(prefix="taskq-bench-") as tmp:
            for system in systems:
                self._note_skips(system, workloads)
            for round_no in range(self.repeat):
                if self.repeat > 1:
                    self.say(f"[bold]round {round_no + 1} of {self.repeat}[/]")
                for system in systems:
                    todo = [w for w in workloads if self._due(system, w, round_no)]
                    for index, group in enumerate(_groups(todo)):
                        workdir = Path(tmp) / system / f"round{round_no}-group{index}"
                        self._run_group(system, group, workdir)
        return self.results

    def _note_skips(self, system: str, workloads: list[Workload]) -> None:
        missing = available(system)
        for workload in workloads:
            reason = missing or skip_reason(system, workload, self.sizes)
            if reason:
                self.results.put(system, workload.name, reason)

    def _due(self, system: str, workload: Workload, round_no: int) -> bool:
        """Does ``workload`` run on ``system`` in this round? Not after a skip or a failure
        (recorded as text), and a "server" workload only once."""
        if isinstance(self.results.get(system, workload.name), str):
            return False
        return round_no == 0 or workload.group != "server"

    def _run_group(self, name: str, group: list[Workload], workdir: Path) -> None:
        workers = group[0].workers(self.sizes)
        started = time.perf_counter()
        try:
            system = start_system(name, workers, workdir)
        except Exception as exc:
            self.say(f"  [red]{name} did not start[/]: {escape(_error(exc))}")
            for workload in group:
                self.results.put(name, workload.name, _error(exc))
            return
        self.say(f"[bold]{name}[/] with {workers} worker(s): started in "
                 f"{time.perf_counter() - started:.1f} s")
        try:
            if workers:
                warm_up(system)
            for workload in group:
                self._run_workload(system, workload)
        except Exception as exc:  # the warm-up failed: nothing in this group can run
            self.say(f"  [red]{name} warm-up failed[/]: {escape(_error(exc))}")
            for workload in group:
                if self.results.get(name, workload.name) is None:
                    self.results.put(name, workload.name, _error(exc))
        finally:
            _shutdown(system, self.say)

    def _run_workload(self, system: System, workload: Workload) -> None:
        started, steal = time.perf_counter(), StealMeter()
        try:
            metrics = workload.run(system, self.sizes)
        except Exception as exc:
            self.say(f"  [red]{workload.name} failed[/]: {escape(_error(exc))}")
            self.results.put(system.name, workload.name, _error(exc))
            return
        stolen = steal.percent()
        if stolen is not None:
            metrics["cpu_steal_pct"] = stolen
        best = self.results.get(system.name, workload.name)
        if not isinstance(best, dict) or workload.better(metrics, best):
            self.results.put(system.name, workload.name, metrics)
        self.say(f"  {workload.name} ({time.perf_counter() - started:.1f} s): {_brief(metrics)}")


def _brief(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:,.0f}" if abs(v) >= 100 else f"{k}={v:.3g}"
                     for k, v in metrics.items())


def _shutdown(system: System, say: Callable[[str], None]) -> None:
    started = time.perf_counter()
    try:
        system.shutdown()
    except Exception as exc:
        say(f"  [yellow]{system.name} did not shut down cleanly[/]: {escape(_error(exc))}")
    say(f"  stopped in {time.perf_counter() - started:.1f} s")
