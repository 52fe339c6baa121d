"""A real master's autoscaling target and health: ``taskq_desired_workers`` in /metrics,
/api/status and ``taskq status`` as tasks queue, run and end; /healthz without the token,
and 503 once its journal's folder is gone."""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from prometheus_client.parser import text_string_to_metric_families
from web_helpers import get, get_json, start_web_master

import taskq

pytestmark = pytest.mark.timeout(90)
TOKEN = "web-token-for-the-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def desired(url: str) -> dict[str, float]:
    status, body = get(url + "metrics", AUTH)
    assert status == 200, body[:200]
    return {s.labels["queue"]: s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == "taskq_desired_workers"}


def test_desired_workers_follow_the_queue_and_the_workers_size(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    state = tmp_path / "state"
    _, url = start_web_master(cluster, "--state", str(state / "journal.db"),
                              "--http-token-file", str(tmp_path / "token"))
    assert get(url + "healthz") == (200, b"ok\n")  # no token: probes carry none
    assert get(url + "api/status")[0] == 401
    assert desired(url) == {"default": 0}  # a scaler's query has a series from the start
    release = tmp_path / "release"
    held = taskq.task(tasks_mod.hold_until, queue="batch")
    with cluster.client() as client:
        futures = [client.submit(held, str(release)) for _ in range(5)]
        wait_for(lambda: desired(url).get("batch") == 5, 30, "5 workers for 5 queued tasks")
        rows = {q["name"]: q for q in get_json(url + "api/status", AUTH)["queues"]}
        assert (rows["batch"]["depth"], rows["batch"]["desired_workers"]) == (5, 5)
        out = cluster.cli("status")
        assert out.returncode == 0 and "desired workers: batch=5, default=0" in out.stdout
        assert json.loads(cluster.cli("status", "--json").stdout)["desired"] == {
            "batch": 5, "default": 0}

        cluster.start_worker("--queues", "batch", procs=2)
        # all five queued or leased, two at once per worker of this size
        wait_for(lambda: desired(url).get("batch") == 3, 30, "3 workers of 2")
        release.touch()
        cf.wait(futures, timeout=60)
        assert all(f.result() == str(release) for f in futures)
    wait_for(lambda: desired(url).get("batch") == 0, 30, "no worker wanted once all ended")

    shutil.rmtree(state)  # the journal's volume went away
    assert get(url + "healthz") == (503, b"the journal's file is not writable\n")
