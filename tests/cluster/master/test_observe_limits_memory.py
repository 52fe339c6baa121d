"""What the page, /api/status and the terminal show beyond counts: each queue's limits, each
worker's memory, and wait/run histograms and one-minute windows that come back after a
killed master."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from rich.console import Console
from test_dashboard import CHROMIUM, FLAGS
from test_observe import scrape
from web_helpers import get_json, start_web_master

import taskq
from taskq.cli.render import size, top_view
from taskq.master.broker import Broker
from taskq.master.journal import Journal
from taskq.master.state import BrokerState, WorkerInfo, views
from taskq.master.state.limits import QueueLimit
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, WorkerHello
from taskq.worker.pools.child_record import resident_bytes

pytestmark = pytest.mark.timeout(90)


def new_state(wall_offset: float = 1_000_000.0) -> BrokerState:
    state = BrokerState(lost_after=5.0, max_lost=2, max_payload=1000)
    state.history.wall_offset = wall_offset
    state.register(WorkerInfo("w1", "hostA", 11, 2, ("default", "gpu")), 0.0)
    return state


def task(n: int, queue: str = "default") -> TaskMsg:
    return TaskMsg(f"t{n}", "job:J", b"f", b"a", TaskOptions(queue=queue))


# ---------------------------------------------------------------------------- queue limits


def test_status_lists_each_queue_with_its_limits() -> None:
    state = new_state()
    state.limits.set("gpu", QueueLimit(rate=2.5, concurrency=3))
    state.limits.set("slow", QueueLimit(concurrency=1))
    state.submit([task(1)], 1.0)
    snap = views.render_monitor(views.monitor_copy(state, 1.0))
    rows = {q["name"]: (q["depth"], q["rate"], q["concurrency"]) for q in snap["queues"]}
    assert rows == {"default": (1, 0.0, 0), "gpu": (0, 2.5, 3), "slow": (0, 0.0, 1)}
    snap["uptime"] = 1.0
    console = Console(file=io.StringIO(), width=200)
    console.print(top_view(snap, "here:1"))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    gpu = next(line for line in text.splitlines() if " gpu " in line)
    assert "2.5/s" in gpu and " 3 " in gpu
    assert "no limit" in next(line for line in text.splitlines() if " default " in line)


# ---------------------------------------------------------------------------- memory


def test_resident_bytes_reads_statm(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "statm").write_text("1000 250 100 1 0 300 0\n")
    assert resident_bytes(42, str(tmp_path)) == 250 * os.sysconf("SC_PAGE_SIZE")
    assert resident_bytes(43, str(tmp_path)) == 0  # gone: unknown, not an error
    assert resident_bytes(os.getpid()) > 1 << 20
    assert size(0) == "-" and size(512) == "512 B" and size(3 * 2**20) == "3.0 MiB"


def test_a_heartbeat_carries_memory_and_a_bad_one_is_refused() -> None:
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20))
    broker.register(WorkerHello("w1", "h", 1, 1))
    assert broker.heartbeat("w1", [], 0, memory=123 << 20)
    assert broker.heartbeat("w1", [], 0)  # an older worker, without it: unknown
    assert broker.status().workers[0].memory == 0
    assert broker.heartbeat("w1", [], 0, memory=77)
    for bad in (-1, "lots", 1.5, True):
        with pytest.raises(ValueError, match="bad memory") as err:
            broker.heartbeat("w1", [], 0, memory=bad)  # type: ignore[arg-type]
        assert repr(bad) in str(err.value)
    assert broker.status().workers[0].memory == 77
    assert broker.monitor()["workers"][0]["memory"] == 77


def children_rss(pid: int) -> int:
    """Resident bytes of a process's descendants (its pool, and the forkserver's children)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                total += resident_bytes(int(entry)) + children_rss(int(entry))
    return total


def test_limits_and_memory_in_status_top_and_the_api(cluster: Cluster) -> None:
    _, url = start_web_master(cluster)
    worker = cluster.start_worker(procs=2)
    cluster.wait_workers(1)
    out = cluster.cli("queue", "set", "gpu", "--rate", "150/m", "--concurrency", "3")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: get_json(url + "api/status")["workers"][0]["memory"] > 0, 20,
             "a heartbeat with memory")
    snap = get_json(url + "api/status")
    gpu = next(q for q in snap["queues"] if q["name"] == "gpu")
    assert (gpu["rate"], gpu["concurrency"]) == (2.5, 3)
    memory = snap["workers"][0]["memory"]
    own = resident_bytes(worker.pid)
    assert own > 0
    # its pool processes count too: more than the worker's own, no more than all of them
    assert own < memory < 3 * (own + children_rss(worker.pid))
    status = cluster.cli("status")
    assert status.returncode == 0 and "MiB" in status.stdout, status.stdout
    top = cluster.cli("top", "--once")
    assert top.returncode == 0, top.stderr
    assert "2.5/s" in top.stdout and "MiB" in top.stdout


# ---------------------------------------------------------------------------- restarts


def test_histograms_and_windows_round_trip_through_the_journal(tmp_path: Path) -> None:
    state = new_state(wall_offset=time.time())
    journal = Journal(tmp_path / "j.db")
    try:
        state.submit([task(1), task(2, "gpu"), task(3)], 1.0)
        state.lease("w1", 3, 2.0)
        state.complete("w1", [ResultMsg("t1", Status.OK, b"v", "", "", 0.25),
                              ResultMsg("t2", Status.ERROR, b"e", "E", "", 3.5)], 4.0)
        journal.write(state.drain_changes())
        state.complete("w1", [ResultMsg("t3", Status.OK, b"v", "", "", 0.002)], 5.0)
        journal.write(state.drain_changes())
    finally:
        journal.close()
    again = BrokerState(lost_after=5.0, max_lost=2, max_payload=1000)
    journal = Journal(tmp_path / "j.db")
    try:
        journal.load(again)
    finally:
        journal.close()
    before, after = state.history.stats, again.history.stats
    for live, back in ((before.wait, after.wait), (before.run, after.run)):
        assert {q: h.counts for q, h in back.items()} == {q: h.counts for q, h in live.items()}
        assert {q: round(h.total, 5) for q, h in back.items()} == {
            q: round(h.total, 5) for q, h in live.items()}
    assert sum(after.run["default"].counts) == 2
    shown = views.render_monitor(views.monitor_copy(again, 0.0))
    assert shown["totals"] == {"done": 2, "failed": 1}
    assert shown["percentiles"]["run_p99"] is not None and shown["percentiles"]["run_p99"] >= 3


def journaled_ends(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM history WHERE final=1").fetchone()[0])
    finally:
        con.close()


HISTOGRAMS = ("taskq_task_wait_seconds", "taskq_task_run_seconds")


@pytest.mark.slow
def test_histograms_and_windows_survive_a_killed_master(cluster: Cluster,
                                                        tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    master, url = start_web_master(cluster, "--state", str(db))
    cluster.start_worker("--connect-timeout", "60")
    cluster.wait_workers(1)
    with cluster.client() as client:
        futures = [client.submit(tasks_mod.add, i, 1) for i in range(5)]
        futures.append(client.submit(taskq.task(tasks_mod.sleep_then, timeout=0.3), 30))
        futures.append(client.submit(tasks_mod.fail, "x"))
        for f in futures:
            f.exception(60)
    wait_for(lambda: journaled_ends(db) == 7, 30, "the 7 ends journaled")
    before = {k: v for k, v in scrape(url).items() if k[0].startswith(HISTOGRAMS)}
    windows = get_json(url + "api/status")["totals"]
    assert before[("taskq_task_run_seconds_count", (("queue", "default"),))] == 7
    master.signal_group(signal.SIGKILL)
    master.wait(10)
    _, url = start_web_master(cluster, "--state", str(db))
    after = {k: v for k, v in scrape(url).items() if k[0].startswith(HISTOGRAMS)}
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] == pytest.approx(value, abs=1e-5), key  # sums to the microsecond
    assert get_json(url + "api/status")["totals"] == windows == {"done": 5, "failed": 2}
    cluster.start_worker()
    cluster.wait_workers(1)
    with cluster.client() as client:  # they go on counting from there
        assert client.submit(tasks_mod.add, 1, 1).result(60) == 2
    wait_for(lambda: scrape(url)[("taskq_task_run_seconds_count", (("queue", "default"),))]
             == 8, 30, "the next task counted on top")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs chromium (apt install it)")
def test_the_page_shows_queue_limits_and_worker_memory(cluster: Cluster,
                                                        tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    _, url = start_web_master(cluster)
    cluster.start_worker(procs=2)
    cluster.wait_workers(1)
    assert cluster.cli("queue", "set", "gpu", "--rate", "150/m", "--concurrency", "3"
                       ).returncode == 0
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            page.wait_for_selector("#queues td:text-is('2.5 /s')", timeout=10_000)
            gpu = page.inner_text("#queues tr:has(td:text-is('gpu'))")
            assert gpu.split("\t")[-3:] == ["2.5 /s", "3", "active"], gpu
            page.wait_for_selector("#workers td:has-text('MiB')", timeout=10_000)
            head = page.inner_text("#workers thead")
            assert "memory" in head
        finally:
            browser.close()
