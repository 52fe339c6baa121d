"""Smoke test of ``python -m bench.primitives``: it runs every system it finds and writes
positive figures. It asserts that something was measured, never how fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import ROOT


@pytest.mark.timeout(180)
def test_the_primitives_benchmark_writes_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "primitives.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.primitives", "--repeat", "1", "--seconds", "0.2",
         "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
        check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    assert {"taskq-durable", "taskq-memory", "manager"} <= set(figures)
    for name in ("taskq-durable", "taskq-memory", "manager"):
        assert figures[name]["lock_per_s"] > 0 and figures[name]["counter_add_per_s"] > 0
    assert "x manager" in proc.stdout
