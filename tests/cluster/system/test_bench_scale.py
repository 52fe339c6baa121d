"""Smoke test of the scale benchmark: ``python -m bench scale`` at a tiny size.

A real master and the simulated workers of ``bench.scale_sim`` at N = 0 and 5 with short
windows; it asserts that every figure is there, positive and consistent, never how fast
anything is, and that every process the benchmark started is gone when it returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import ROOT

from taskq.net import serving

ACTIVE = 2
# what serving connections may add to a master's threads, however many there are
FIXED_THREADS = serving.REQUEST_THREADS + serving.HANDSHAKE_THREADS


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(120)
def test_scale_benchmark_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "scale", "--sizes", "0,5", "--idle-window", "1",
         "--tasks", "300", "--validate", "0", "--lost-after", "1", "--join-timeout", "30",
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "taskq master at scale" in proc.stdout

    doc = json.loads(out.read_text())
    assert doc["stopped"] is None, doc["stopped"]
    assert doc["pids"], "it started no process"
    assert not [pid for pid in doc["pids"] if _alive(pid)], "a process was left running"
    rows = {row["idle_workers"]: row for row in doc["sizes"]}
    assert set(rows) == {0, 5}
    for n, row in rows.items():
        assert row["workers"] == n + ACTIVE
        assert row["joins_per_s"] > 0
        assert row["idle_cpu_pct"] >= 0
        # the master's threads do not grow with its connections (two per worker)
        assert row["threads"] <= row["threads_before"] + FIXED_THREADS, row
        assert row["open_files"] >= 2 * row["workers"], row
        assert row["rss_mib"] > 0 and row["rss_kib_per_worker"] is not None
        assert row["tasks_per_s"] > 0 and row["cpu_ms_per_task"] >= 0
        assert 0 < row["p50_start_ms"] <= row["p99_start_ms"], row
        # a silent worker is noticed after --lost-after, not before, and in bounded time
        assert 1.0 <= row["lost_requeue_s"] < 15, row
        assert row["lost_unlisted_s"] >= 1.0, row
        assert 0 < row["rejoin_s"] <= row["rejoin_from_kill_s"], row
        assert row["rejoin_failed"] == 0
    assert rows[5]["threads"] <= rows[0]["threads"] + FIXED_THREADS  # flat, not 2 per worker
    assert "cpu_per_task_vs_none" in rows[5]
