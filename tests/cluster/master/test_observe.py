"""Seeing into a real cluster: /metrics against what the cluster did, the JSON API, the
history across a killed master, the web token, and the terminal views."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import json
import os
import pty
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from web_helpers import get, get_json, start_web_master

import taskq

pytestmark = pytest.mark.timeout(90)


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    status, body = get(url + "metrics", headers)
    assert status == 200, body[:200]
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def run_mixed_job(cluster: Cluster) -> None:
    """20 tasks that return, 3 that raise, 1 that runs past its timeout."""
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.add, i, 1) for i in range(20)]
        futures += [client.submit(tasks_mod.fail, f"no {i}") for i in range(3)]
        futures.append(client.submit(taskq.task(tasks_mod.sleep_then, timeout=0.3), 30))
        cf.wait(futures, timeout=60)
        assert sum(f.exception() is None for f in futures) == 20


def test_metrics_count_what_the_cluster_did(cluster: Cluster, tmp_path: Path) -> None:
    _, url = start_web_master(cluster, "--state", str(tmp_path / "journal.db"))
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    run_mixed_job(cluster)
    m = scrape(url)
    q = (("queue", "default"),)
    assert m[("taskq_tasks_submitted_total", q)] == 24
    finished = {o: m.get(("taskq_tasks_finished_total", (("outcome", o), *q)), 0)
                for o in ("ok", "raised", "timeout", "crashed", "lost", "cancelled")}
    assert finished == {"ok": 20, "raised": 3, "timeout": 1, "crashed": 0, "lost": 0,
                        "cancelled": 0}
    assert m[("taskq_queue_depth", q)] == 0
    assert m[("taskq_tasks_running", q)] == 0
    assert m[("taskq_workers", (("state", "active"),))] == 2
    assert m[("taskq_task_run_seconds_count", q)] == 24
    assert m[("taskq_task_wait_seconds_count", q)] == 24
    assert m[("taskq_task_run_seconds_bucket", (("le", "+Inf"), *q))] == 24
    assert 0.3 <= m[("taskq_task_run_seconds_sum", q)] < 30  # the timed-out one ran ~0.3 s
    assert m[("taskq_journal_commit_seconds_count", ())] >= 1


def test_the_json_api_lists_and_shows_tasks(running_web: tuple[Cluster, str]) -> None:
    cluster, url = running_web
    with cluster.client() as client:
        ok = client.submit(tasks_mod.add, 1, 2)
        bad = client.submit(taskq.task(tasks_mod.fail, retries=1), "boom")
        assert ok.result(30) == 3
        with pytest.raises(KeyError):
            bad.result(30)
    failed = get_json(url + "api/tasks?state=failed")
    assert [t["outcome"] for t in failed] == ["raised"]
    task = get_json(url + "api/tasks/" + failed[0]["task_id"])
    assert [a["outcome"] for a in task["attempts"]] == ["raised", "raised"]
    assert all(a["error_type"] == "KeyError" and "boom" in a["detail"]
               for a in task["attempts"])
    assert {a["host"] for a in task["attempts"]} and all(a["pid"] > 0 for a in task["attempts"])
    everything = get_json(url + "api/tasks")
    assert sorted(t["outcome"] for t in everything) == ["ok", "raised"]
    assert get_json(url + "api/tasks?job=nope") == []
    assert get(url + "api/tasks/nope")[0] == 404
    why = get_json(url + "api/tasks/" + failed[0]["task_id"] + "/explain")
    assert why["kind"] == "ended" and why["facts"]["error_type"] == "KeyError"
    assert get_json(url + "api/tasks/nope/explain")["kind"] == "unknown"
    status, body = get(url + "api/tasks?state=bogus")
    assert status == 400 and b"bogus" in body
    snap = get_json(url + "api/status")
    assert len(snap["workers"]) == 2 and snap["failed"][0]["task_id"] == failed[0]["task_id"]
    text = json.dumps(snap)
    assert "boom" in text  # the traceback is shown; the arguments and results never are
    assert "'add'" not in text and '"value"' not in text


@pytest.fixture
def running_web(cluster: Cluster) -> tuple[Cluster, str]:
    _, url = start_web_master(cluster)
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    return cluster, url


def journaled_outcomes(db: Path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT task_id, outcome FROM history WHERE final=1"))
    finally:
        con.close()


@pytest.mark.slow
def test_history_and_counters_survive_a_killed_master(cluster: Cluster, tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    master, url = start_web_master(cluster, "--state", str(db))
    cluster.start_worker("--connect-timeout", "60")
    cluster.wait_workers(1)
    ids = [cluster.cli("submit", "tasks_mod:add", str(i), "1", "--job", "j").stdout.split()[-1]
           for i in range(3)]
    bad = cluster.cli("submit", "tasks_mod:fail", "oops", "--job", "j", "--retries", "1")
    bad_id = bad.stdout.split()[-1]
    wait_for(lambda: len(journaled_outcomes(db)) == 4, 30, "the 4 ends journaled")
    master.signal_group(signal.SIGKILL)
    master.wait(10)
    _, url = start_web_master(cluster, "--state", str(db))
    shown = json.loads(cluster.cli("inspect", bad_id, "--json").stdout)
    assert [(a["n"], a["outcome"], a["error_type"]) for a in shown["attempts"]] == [
        (1, "raised", "KeyError"), (2, "raised", "KeyError")]
    assert "oops" in shown["attempts"][1]["detail"] and shown["attempts"][1]["final"]
    assert shown["attempts"][0]["ended"] <= shown["attempts"][1]["queued"] + 0.01
    text = cluster.cli("inspect", bad_id)
    assert text.returncode == 0 and "KeyError" in text.stdout and "raised" in text.stdout
    failed = cluster.cli("history", "--job", "j", "--failed", "--json")
    assert [json.loads(line)["task_id"] for line in failed.stdout.splitlines()] == [bad_id]
    recent = cluster.cli("history", "--since", "1h", "--json").stdout.splitlines()
    assert sorted(json.loads(line)["task_id"] for line in recent) == sorted([*ids, bad_id])
    assert cluster.cli("inspect", "no-such-task").returncode == 1
    q = (("queue", "default"),)
    m = scrape(url)
    assert m[("taskq_tasks_submitted_total", q)] == 4  # not reset by the restart
    assert m[("taskq_tasks_finished_total", (("outcome", "raised"), *q))] == 1


def test_a_non_loopback_page_needs_a_token(cluster: Cluster, tmp_path: Path) -> None:
    refused = cluster.cli("master", "--port", "0", "--in-memory", "--http", "0.0.0.0:0")
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1 and "--http-token-file" in refused.stderr
    token = "s3cret-" + "x" * 20
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    master, url = start_web_master(cluster, "--http-token-file", str(token_file),
                                   "--log-level", "debug", http="0.0.0.0:0")
    url = url.replace("0.0.0.0", "127.0.0.1")
    assert get(url + "api/status")[0] == 401
    assert get(url + "metrics")[0] == 401
    assert get(url + "api/status", {"Authorization": "Bearer wrong"})[0] == 401
    assert get(url + "api/status", {"Authorization": f"Bearer {token}"})[0] == 200
    status, page = get(url)  # redirected to the login form
    assert status == 200 and b'name=token' in page
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    form = urllib.parse.urlencode({"token": token}).encode()
    with opener.open(url + "login", data=form, timeout=10) as reply:
        assert reply.status == 200 and b"/app.js" in reply.read()  # the dashboard itself
    with opener.open(url + "api/status", timeout=10) as reply:
        assert reply.status == 200
    assert token not in master.stderr()


def test_metrics_may_be_public_with_the_page_behind_a_token(cluster: Cluster) -> None:
    env = {**cluster.env, "TASKQ_HTTP_TOKEN": "tok-" + "y" * 20}
    _, url = start_web_master(cluster, "--metrics-public", http="0.0.0.0:0", env=env)
    url = url.replace("0.0.0.0", "127.0.0.1")
    assert get(url + "metrics")[0] == 200
    assert get(url + "api/status")[0] == 401


@pytest.mark.parametrize(("args", "named"), [
    (["--http", "nonsense"], "nonsense"), (["--http", "1.2.3.4:99999"], "99999"),
    (["--history", "7x"], "7x"), (["--http-token-file", "/nonexistent/t"], "/nonexistent/t"),
])
def test_bad_web_flags_are_one_line_and_exit_2(cluster: Cluster, args: list[str],
                                               named: str) -> None:
    out = cluster.cli("master", "--port", "0", "--in-memory", *args)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and named in out.stderr


def test_a_busy_default_port_is_a_warning_and_an_explicit_one_an_error(
        running_web: tuple[Cluster, str]) -> None:
    cluster, url = running_web
    taken = urllib.parse.urlsplit(url).netloc
    out = cluster.cli("master", "--port", "0", "--in-memory", "--http", taken, timeout=30)
    assert out.returncode == 1 and "cannot serve the web page" in out.stderr
    holder = socket.socket()
    with holder, contextlib.suppress(OSError):  # busy already if another master has it
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 8265))
        holder.listen()
        with socket.socket() as probe:  # a fixed port: with --port 0 the page's is free-picked
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cluster.start_master(port=port)  # the default address: it starts all the same
        proc = cluster.procs[-1]
        wait_for(lambda: "http_not_started" in proc.stderr(), 10, "the warning")


def test_status_and_top_show_jobs_and_workers(running_web: tuple[Cluster, str]) -> None:
    cluster, _ = running_web
    for i in range(3):
        cluster.cli("submit", "tasks_mod:add", str(i), "--job", "prog")
    wait_for(lambda: any(j["name"] == "prog" and j["done"] == 3
                         for j in cluster.status()["jobs"]), 30, "the job to end")
    status = cluster.cli("status")
    assert "prog" in status.stdout and "100%" in status.stdout
    top = cluster.cli("top", "--once")
    assert top.returncode == 0, top.stderr
    assert "prog" in top.stdout and top.stdout.count("active") == 2


def test_results_wait_draws_a_bar_on_a_terminal_stderr(running_web: tuple[Cluster, str]) -> None:
    cluster, _ = running_web
    for i in range(3):
        cluster.cli("submit", "tasks_mod:add", str(i), "--job", "bar")
    cluster.cli("submit", "tasks_mod:fail", "x", "--job", "bar")
    leader, follower = pty.openpty()
    env = {**cluster.env, "TASKQ_ADDRESS": cluster.address, "COLUMNS": "120"}
    out_path = cluster.tmp / "bar.out"  # a file: a pipe would wait for a reader
    with out_path.open("w") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "taskq", "results", "bar", "--wait"],
                                env=env, stdout=out_file, stderr=follower, text=True)
    os.close(follower)
    seen = b""
    try:
        while True:  # read the terminal until the command closes it
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1  # one task failed
    assert len(out_path.read_text().splitlines()) == 4  # the results still go to stdout
    text = seen.decode(errors="replace")
    assert "job bar" in text and "4/4" in text and "1 failed" in text


def test_track_yields_futures_as_they_complete_with_a_bar() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    futures: list[cf.Future[int]] = [cf.Future() for _ in range(3)]
    futures[1].set_result(1)
    futures[0].set_exception(KeyError("k"))
    futures[2].set_result(2)
    got = list(taskq.track(futures, "work", console=console))
    assert sorted(map(id, got)) == sorted(map(id, futures))
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "work" in drawn and "3/3" in drawn and "1 failed" in drawn
