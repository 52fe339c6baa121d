"""Smoke test of ``python -m bench.io_pools``: it runs on every pool and writes figures.

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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_io_benchmark_writes_figures_for_every_pool(tmp_path: Path) -> None:
    out = tmp_path / "io.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.io_pools", "--tasks", "20", "--seconds", "0.01",
         "--pings", "5", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for pool in ("taskq-processes", "taskq-threads", "taskq-asyncio"):
        assert doc[pool]["tasks_per_s"] > 0 and doc[pool]["p50_vs_processpool"] > 0, doc
    assert doc["threadpool"]["tasks_per_s"] > 0 and doc["gather"]["tasks_per_s"] > 0
    assert doc["processpool"]["p50_us"] > 0
