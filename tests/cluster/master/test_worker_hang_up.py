"""A worker whose process dies closes the connection of its poll: the master sees it hang
up, so that in a crowd (where each worker beats seldom and may be silent for several long
intervals) it is lost ``lost_after`` later, not after those intervals
(``taskq.master.state.liveness``). Its task then runs elsewhere, once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(120)


def test_a_killed_worker_is_seen_hanging_up_and_its_task_runs_elsewhere(
        cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()
    doomed = cluster.start_worker()
    cluster.wait_workers(1)
    [listed] = cluster.status()["workers"]
    marks, release = tmp_path / "marks", tmp_path / "release"
    marks.mkdir()
    with cluster.client() as client:
        future = client.submit(tasks_mod.mark_then_hold, str(marks), "t", str(release))
        wait_for(lambda: tasks_mod.runs_of(str(marks), "t") == 1, 60, "the task to start")
        doomed.signal_group(signal.SIGKILL)
        doomed.wait(30)
        wait_for(lambda: "worker_lost" in master.stderr(), 60, "the worker to be lost")
        log = master.stderr()
        hung_up = log.find(f'"worker_hung_up", "worker_id": "{listed["worker_id"]}"')
        assert 0 <= hung_up < log.index("worker_lost"), log[-3000:]
        release.touch()
        cluster.start_worker()
        assert future.result(60) == "t"
    assert tasks_mod.runs_of(str(marks), "t") == 2  # the killed run, and the one that ended
