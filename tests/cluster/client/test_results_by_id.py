"""Results by id on a real cluster: a submitter keeps a result with ``result_ttl`` and exits;
other processes read it by id (twice, fetched or not) until its TTL passes; then
``ResultExpired``. A kept result survives a master SIGKILL, and the dashboard's JSON and
/metrics count it."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import kept_tasks
import pytest
from cluster import ROOT, Cluster, wait_for
from web_helpers import get, get_json, start_web_master

import taskq

pytestmark = pytest.mark.timeout(120)
HELPER = str(ROOT / "tests" / "kept_tasks.py")


def python(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``kept_tasks.py`` as a process of its own (a submitter, or a reader)."""
    return subprocess.run([sys.executable, HELPER, *args], env=cluster.env, text=True,
                          capture_output=True, timeout=90, cwd=cluster.tmp)


def test_a_gone_submitters_results_are_read_by_id_by_two_other_processes(
        running: Cluster) -> None:
    submitted = python(running, "submit", running.address, running.authkey, "60")
    assert submitted.returncode == 0, submitted.stderr
    ok_id, bad_id = submitted.stdout.split()
    for _ in range(2):  # a second reader finds them as the first did
        read = python(running, "read", running.address, running.authkey, ok_id, bad_id)
        assert read.returncode == 0, read.stderr
        assert read.stdout.split() == ["49", "ValueError", "no", "good"]
    with running.client() as client:
        assert client.future(ok_id).result(30) == 49
        with pytest.raises(ValueError, match="no good"):
            client.future(bad_id).result(30)


def test_a_running_task_is_read_by_id_once_it_ends_and_its_own_client_reads_it_again(
        running: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with running.client() as submitter, running.client() as reader:
        fut = submitter.submit(taskq.task(kept_tasks.after, result_ttl=60), str(gate), 5)
        wait_for(fut.running, 30, "the task to run")
        early = reader.future(fut.task_id)
        assert not early.done()
        gate.write_text("go")
        assert early.result(30) == 5 and fut.result(30) == 5
        again = submitter.future(fut.task_id)  # its own, ended and fetched: kept
        assert again is not None and again.result(30) == 5
        plain = submitter.submit(kept_tasks.square, 3)  # no TTL: its own ends as before
        assert plain.result(30) == 9
        wait_for(lambda: submitter.future(plain.task_id) is None, 10,
                 "the acknowledged result to be gone")


def test_a_result_expires_after_its_ttl(running: Cluster) -> None:
    with running.client() as client:
        fut = client.submit(taskq.task(kept_tasks.square, result_ttl=1.0), 4)
        assert fut.result(30) == 16
        assert client.future(fut.task_id).result(30) == 16

        def expired() -> bool:
            try:
                client.future(fut.task_id)
            except taskq.ResultExpired as exc:
                assert fut.task_id in str(exc)
                return True
            return False

        wait_for(expired, 30, "the kept result to expire")
        with pytest.raises(taskq.DependencyError, match="knows no task"):
            client.future("client-nobody-1")


def kept_rows(journal: Path) -> list[str]:
    with closing(sqlite3.connect(journal, timeout=5)) as db:
        return [row[0] for row in db.execute("SELECT task_id FROM kept_results")]


@pytest.mark.timeout(180)
def test_a_kept_result_survives_a_master_sigkill(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal), "--result-ttl", "10m")
    cluster.start_worker()
    cluster.wait_workers(1)
    with cluster.client() as client:
        by_default = client.submit(kept_tasks.square, 5)  # the master's --result-ttl
        not_kept = client.submit(taskq.task(kept_tasks.square, result_ttl=0), 6)
        assert by_default.result(60) == 25 and not_kept.result(60) == 36
        task_id = by_default.task_id
    wait_for(lambda: task_id in kept_rows(journal), 30, "the kept result to be journaled")
    assert kept_rows(journal) == [task_id]  # a task with result_ttl=0 writes no row
    master.signal_group(signal.SIGKILL)
    master.wait(30)
    _, url = start_web_master(cluster, "--state", str(journal))  # no --result-ttl now
    with cluster.client() as reader:
        assert reader.future(task_id).result(60) == 25
    status, body = get(url + "metrics")
    assert status == 200
    assert re.search(r"^taskq_kept_results 1\.0$", body.decode(), re.M)
    kept_bytes = re.search(r"^taskq_kept_result_bytes (\d+)\.0$", body.decode(), re.M)
    assert kept_bytes is not None and int(kept_bytes.group(1)) > 0
    assert get_json(url + "api/status")["kept"] == {"results": 1,
                                                    "bytes": int(kept_bytes.group(1))}
