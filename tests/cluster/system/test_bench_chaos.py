"""``python -m bench chaos`` at a small size: a durable master SIGKILLed under load (workers
SIGKILLed too, every second) and during a schedule, started again on its journal; nothing
lost, nothing run twice but what a killed worker was running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import ROOT


@pytest.mark.timeout(240)
def test_master_sigkills_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "chaos", "--tasks", "600", "--kills", "2",
         "--tick-kills", "2", "--kill-workers-every", "1", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=220, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    tasks, ticks = doc["tasks"], doc["schedule"]
    assert (tasks["lost"], tasks["never_ran"], tasks["avoidable_reruns"]) == (0, 0, 0), tasks
    assert tasks["worker_kills"] >= 1  # a second run is fine only where its worker was killed
    assert len(tasks["recovery"]) == 2
    assert ticks["ticks"] >= 2 and ticks["ran_twice"] == 0, ticks
