"""After a master SIGKILL, a restored task waits only for the worker it was leased to: that
worker claims it back and it runs once; a task no worker held runs at once, without waiting
for the claim window (here --lost-after 60 s)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import tasks_mod
from cluster import Cluster, wait_for

WINDOW = "60"  # --lost-after: the longest a restored lease waits for its holder


def test_restored_leases_wait_for_their_holder_and_the_rest_run_at_once(
        cluster: Cluster, tmp_path: Path) -> None:
    journal, marks, release = tmp_path / "journal.db", tmp_path / "marks", tmp_path / "go"
    marks.mkdir()
    master = cluster.start_master("--state", str(journal), "--lost-after", WINDOW)
    port = int(cluster.address.rsplit(":", 1)[1])
    holder = cluster.start_worker()
    client = cluster.client()
    try:
        held = client.submit(tasks_mod.mark_then_hold, str(marks), "held", str(release))
        wait_for(held.running, 60, "the held task to start")
        free = cluster.cli("submit", "tasks_mod:add", "1", "2", "--queue", "later",
                           "--job", "free")
        assert free.returncode == 0, free.stderr
        free_id = free.stdout.split()[-1]
        master.signal_group(signal.SIGKILL)
        master.wait(30)

        cluster.start_master("--state", str(journal), "--lost-after", WINDOW, port=port)
        shown = json.loads(cluster.cli("explain", free_id, "--json").stdout)
        assert shown["kind"] == "no_worker", shown  # queued at once, not held for a claim
        wait_for(lambda: json.loads(cluster.cli("explain", held.task_id, "--json").stdout)[
            "kind"] in ("leased", "running"), 60, "the holder to claim its task back")
        assert "worker" in cluster.cli("explain", held.task_id).stdout
        cluster.start_worker("--queues", "later")
        wait_for(lambda: cluster.status()["done"] >= 1, 30, "the free task to run")
        release.touch()
        assert held.result(timeout=60) == "held"
        assert holder.popen.poll() is None  # the same worker ran it, claimed back
        assert tasks_mod.runs_of(str(marks), "held") == 1
    finally:
        release.touch()
        client.shutdown(wait=False, cancel_futures=True)
