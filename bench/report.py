"""The report: a rich table side by side, the issue's targets with verdicts, and the JSON file.

Each row is one workload and metric; each system's cell holds its absolute figure and its
ratio to ``processpool``; taskq's cells also carry a PASS/FAIL line per target.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.runner import Results
from bench.workloads import Sizes

BASELINE = "processpool"
TASKQ = ("taskq-durable", "taskq-memory")  # the modes every target applies to
TIMES = "\u00d7"
SHORT = {"processpool": "pp", "seed": "seed", "taskq-memory": "mem", "taskq-threads": "thr"}


@dataclass(frozen=True)
class Row:
    workload: str
    metric: str
    label: str
    fmt: str
    higher_is_better: bool


ROWS = (
    Row("throughput", "tasks_per_s", "tasks/s", "{:,.0f}", True),
    Row("map", "items_per_s", "items/s", "{:,.0f}", True),
    Row("latency", "p50_us", "p50 µs", "{:,.0f}", False),
    Row("latency", "p99_us", "p99 µs", "{:,.0f}", False),
    Row("efficiency", "efficiency", "ideal/measured", "{:.3f}", True),
    Row("payload", "mib_per_s", "MiB/s", "{:,.0f}", True),
    Row("scale", "efficiency", "ideal/measured", "{:.3f}", True),
    Row("memory", "bytes_per_task", "bytes/pending task", "{:,.0f}", False),
    Row("delayed", "late_p50_ms", "late p50 ms", "{:,.1f}", False),
    Row("delayed", "late_p99_ms", "late p99 ms", "{:,.1f}", False),
    Row("rate", "ratio", "measured/limit", "{:.3f}", True),
)


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: ``value [/ reference] OP threshold`` for some systems."""

    workload: str
    metric: str
    systems: tuple[str, ...]
    reference: str | None
    op: str
    threshold: float

    @property
    def text(self) -> str:
        if self.reference is None:
            return f"{self.op}{self.threshold:g}"
        return f"{self.op}{self.threshold:g}{TIMES} {SHORT.get(self.reference, self.reference)}"


TARGETS = (
    Target("throughput", "tasks_per_s", TASKQ, "processpool", "≥", 1.5),
    Target("throughput", "tasks_per_s", TASKQ, "seed", "≥", 4.0),
    Target("throughput", "tasks_per_s", ("taskq-durable",), "taskq-memory", "≥", 0.8),
    Target("throughput", "tasks_per_s", ("taskq-tls",), "taskq-memory", "≥", 0.8),
    Target("map", "items_per_s", TASKQ, "processpool", "≥", 1.5),
    Target("latency", "p50_us", TASKQ, "processpool", "≤", 4.0),
    Target("latency", "p50_us", ("taskq-threads",), "processpool", "≤", 2.0),
    Target("efficiency", "efficiency", TASKQ, None, "≥", 0.95),
    Target("scale", "efficiency", TASKQ, None, "≥", 0.7),
    Target("payload", "mib_per_s", TASKQ, "processpool", "≥", 0.8),
    Target("memory", "bytes_per_task", TASKQ, None, "<", 2048),
    Target("delayed", "late_p99_ms", TASKQ, None, "≤", 100),
    Target("rate", "ratio", TASKQ, None, "≤", 1.05),
    Target("rate", "ratio", TASKQ, None, "≥", 0.9),
)
OPS: dict[str, Callable[[float, float], bool]] = {
    "≥": operator.ge, "≤": operator.le, "<": operator.lt}


def verdicts(results: Results) -> list[dict[str, Any]]:
    """Every target for every taskq system that ran: its value and PASS, FAIL or n/a."""
    out = []
    for target in TARGETS:
        for system in target.systems:
            if results.get(system, target.workload) is None:
                continue  # not asked for in this run
            value = results.figure(system, target.workload, target.metric)
            ref = (results.figure(target.reference, target.workload, target.metric)
                   if target.reference else 1.0)
            measured = value / ref if value is not None and ref else None
            verdict = "n/a" if measured is None else (
                "PASS" if OPS[target.op](measured, target.threshold) else "FAIL")
            out.append({"system": system, "workload": target.workload, "metric": target.metric,
                        "target": target.text, "reference": target.reference,
                        "measured": measured, "verdict": verdict})
    return out


def _ratio(results: Results, system: str, row: Row) -> str:
    value = results.figure(system, row.workload, row.metric)
    base = results.figure(BASELINE, row.workload, row.metric)
    if system == BASELINE or value is None or not base:
        return ""
    return f" ({value / base:.3g}{TIMES})"


def _verdict_lines(checks: list[dict[str, Any]], system: str, row: Row) -> list[str]:
    lines = []
    for check in checks:
        if (check["system"], check["workload"], check["metric"]) != (
                system, row.workload, row.metric):
            continue
        colour = {"PASS": "green", "FAIL": "bold red"}.get(check["verdict"], "dim")
        shown = ""
        if check["reference"] is not None and check["measured"] is not None:
            ref = SHORT.get(check["reference"], check["reference"])
            shown = f" {check['measured']:.3g}{TIMES} {ref}"
        lines.append(f"[{colour}]{check['verdict']}[/]{shown}")
    return lines


def _cell(results: Results, system: str, row: Row, checks: list[dict[str, Any]]) -> str:
    outcome = results.get(system, row.workload)
    if outcome is None:
        return "[dim]—[/]"
    if isinstance(outcome, str):  # the JSON file has the whole message
        if outcome.startswith("error"):
            return f"[red]{escape(outcome.split(':', 2)[1].strip())}[/]\n[dim](see JSON)[/]"
        return f"[dim]{escape(outcome)}[/]"
    value = outcome.get(row.metric)
    if value is None:
        return "[dim]—[/]"
    lines = [row.fmt.format(value) + _ratio(results, system, row)]
    return "\n".join(lines + _verdict_lines(checks, system, row))


def table(results: Results, systems: list[str], checks: list[dict[str, Any]]) -> Table:
    """The side-by-side table: one row per workload and metric, one column per system."""
    grid = Table(title="taskq benchmark (ratio in parentheses: vs processpool)",
                 show_lines=True, header_style="bold")
    grid.add_column("workload")
    grid.add_column("metric")
    grid.add_column("taskq targets")
    for system in systems:
        grid.add_column(system, justify="right")
    for row in ROWS:
        if not any(results.get(s, row.workload) is not None for s in systems):
            continue
        targets = ", ".join(dict.fromkeys(
            (f"{t.text}" if t.systems == TASKQ else
             f"{t.systems[0].removeprefix('taskq-')} {t.text}")
            for t in TARGETS if (t.workload, t.metric) == (row.workload, row.metric)))
        grid.add_row(row.workload, row.label, targets,
                     *[_cell(results, s, row, checks) for s in systems])
    return grid


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(), "python": sys.version.split()[0],
        "implementation": platform.python_implementation(), "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            models = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
        with open("/proc/meminfo") as fh:
            info["mem_total_mib"] = int(fh.readline().split()[1]) // 1024
    except OSError:
        pass
    for package in ("taskq", "cloudpickle", "dask", "distributed"):
        try:
            info[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[f"{package}_version"] = None
    return info


def write_json(path: Path, results: Results, checks: list[dict[str, Any]], sizes: Sizes,
               command: str, extra: dict[str, Any]) -> None:
    """All figures, the machine, the sizes and the verdicts, as one JSON document."""
    doc = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "machine": machine(),
        "sizes": asdict(sizes),
        **extra,
        "results": results.by_system,
        "targets": checks,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def summary(checks: list[dict[str, Any]]) -> str:
    """One line: how many targets passed, and which failed."""
    judged = [c for c in checks if c["verdict"] != "n/a"]
    failed = [f"{c['system']} {c['workload']} {c['target']}" for c in judged
              if c["verdict"] == "FAIL"]
    line = f"targets: {len(judged) - len(failed)}/{len(judged)} passed"
    return line + (f"; [bold red]FAIL[/]: {'; '.join(failed)}" if failed else "")


def print_report(console: Console, results: Results, systems: list[str],
                 checks: list[dict[str, Any]]) -> None:
    console.print(table(results, systems, checks))
    console.print(summary(checks))
