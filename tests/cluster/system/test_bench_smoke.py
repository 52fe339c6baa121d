"""Smoke test of the benchmark: ``python -m bench --quick`` runs and writes sane figures.

It asserts that the run completes and measures something, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import ROOT

SYSTEMS = ("taskq-memory", "processpool")


@pytest.mark.timeout(300)
def test_quick_benchmark_writes_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "throughput,latency",
         "--systems", ",".join(SYSTEMS), "--repeat", "2", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reproduce:" in proc.stdout
    assert proc.stdout.count("round ") == 2  # every system once in each round
    assert proc.stdout.count("taskq-memory with 2 worker(s)") == 2

    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1
    assert doc["machine"]["python"]
    for system in SYSTEMS:
        figures = doc["results"][system]
        assert figures["throughput"]["tasks_per_s"] > 0, figures
        assert figures["latency"]["p50_us"] > 0, figures
        assert figures["latency"]["p99_us"] >= figures["latency"]["p50_us"], figures
        steal = figures["latency"].get("cpu_steal_pct")
        assert steal is None or 0 <= steal <= 100, figures
    verdicts = {(t["system"], t["workload"]) for t in doc["targets"]}
    assert ("taskq-memory", "throughput") in verdicts
    assert all(t["verdict"] in {"PASS", "FAIL", "n/a"} for t in doc["targets"])
