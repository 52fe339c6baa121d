"""The dashboard as a user looks at it: a real master, a worker killed while it ran two tasks,
a live worker that ran the rest and one that failed, and the page in a real headless Chromium
(the distribution's package) with JavaScript off and on, at desktop and phone widths. Its first
paint holds the master's numbers, the workers table fits a 375 px screen, the script takes
over with live updates, and the docs' screenshot comes from this run.

The screenshot is always taken into the test's temporary directory, so a run leaves the tree
clean; ``TASKQ_WRITE_DOCS_SCREENSHOT=1`` makes the run write it to docs/dashboard.png,
stamped with the digest of the page's sources, which tests/unit/master/test_page.py checks.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from web_helpers import (
    CHROMIUM,
    DOCS_SHOT,
    FLAGS,
    PNG_SIGNATURE,
    WRITE_SHOT_ENV,
    get_json,
    page_sources_digest,
    png_stamp,
    stamp_png,
    start_web_master,
)

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs chromium (apt install it)"),
]

PHONE, DESKTOP = 375, 1280
QUICK = 20  # tasks that end OK on the live worker, besides the killed worker's two


def worker(url: str, worker_id: str) -> dict[str, Any]:
    snap = get_json(url + "api/status")
    return next((w for w in snap["workers"] if w["worker_id"] == worker_id), {})


def idle(url: str) -> bool:
    snap = get_json(url + "api/status")
    return not any(q["depth"] or q["running"] for q in snap["queues"]) and \
        not any(w["busy"] for w in snap["workers"])


@pytest.fixture
def after_a_kill(cluster: Cluster) -> Iterator[tuple[str, str, Any]]:
    """A master and a worker killed while it ran two tasks, then a worker that ran those and
    QUICK more, and one that failed; yields the page's URL, the killed worker's id and an
    open client."""
    _, url = start_web_master(cluster)
    doomed = cluster.start_worker(procs=2)
    cluster.wait_workers(1)
    doomed_id = cluster.status()["workers"][0]["worker_id"]
    with cluster.client() as client:
        slow = [client.submit(tasks_mod.sleep_then, 1.5, i) for i in range(2)]
        wait_for(lambda: worker(url, doomed_id).get("busy") == 2, 30, "both tasks to run")
        doomed.kill_all()
        cluster.start_worker()
        wait_for(lambda: worker(url, doomed_id).get("state") == "lost", 30, "a lost worker")
        failing = client.submit(tasks_mod.fail, "shown-on-the-page")
        assert [client.submit(tasks_mod.add, i, 1).result(60) for i in range(QUICK)] == \
            list(range(1, QUICK + 1))
        assert [f.result(60) for f in slow] == [0, 1]
        with pytest.raises(KeyError):
            failing.result(60)
        wait_for(lambda: idle(url), 30, "the cluster to be idle")
        yield url, doomed_id, client


def cells(page: Any, table: str) -> list[list[str]]:
    return list(page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"))


def tile(page: Any, key: str) -> str:
    return str(page.inner_text(f"[data-tile='{key}'] b"))


def check_numbers(page: Any, snap: dict[str, Any], doomed: str) -> None:
    """The page holds the master's numbers (of a snapshot taken while the cluster idles)."""
    live = [w for w in snap["workers"] if w["state"] != "lost"]
    assert (tile(page, "workers"), tile(page, "queued"), tile(page, "running")) == (
        str(len(live)), "0", "0")
    assert (tile(page, "done"), tile(page, "failed")) == (str(QUICK + 2), "1")
    assert snap["totals"] == {"done": QUICK + 2, "failed": 1}
    shown = {row[0]: row for row in cells(page, "workers")}
    assert set(shown) == {w["worker_id"] for w in snap["workers"]}
    for w in snap["workers"]:  # worker, host, pid, pool, busy, done, failed ... state
        row = shown[w["worker_id"]]
        assert row[:7] + row[-1:] == [str(w[k]) for k in (
            "worker_id", "host", "pid", "procs", "busy", "done", "failed", "state")], row
    assert (shown[doomed][4], shown[doomed][-1]) == ("0", "lost")
    (queue,) = cells(page, "queues")
    (q,) = snap["queues"]
    assert [queue[i] for i in (0, 1, 2, 5, 6)] == [
        q["name"], "0", "0", str(q["submitted"]), str(q["finished"])]
    jobs = [[j["name"], str(j["done"]), str(j["failed"]), str(j["open"]), str(j["waiting"])]
            for j in reversed(snap["jobs"])]
    assert [row[:1] + row[2:] for row in cells(page, "jobs")] == jobs
    assert "KeyError: 'shown-on-the-page'" in page.inner_text("#failed pre")
    texts = page.eval_on_selector_all("#charts svg text", "ts => ts.map(t => t.textContent)")
    assert {"minutes ago", "tasks / min"} <= set(texts)
    assert {"time (ms)", "time (s)"} & set(texts)


def check_fits(page: Any) -> None:
    """Nothing is wider than a phone's screen: every worker cell is on it."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
    edges = page.eval_on_selector_all("#workers td", "tds => tds.map(td => { "
                                      "const r = td.getBoundingClientRect(); "
                                      "return [r.left, r.right]; })")
    assert edges and all(left >= 0 and right <= PHONE for left, right in edges), edges


def png_width(data: bytes) -> int:
    assert data[:8] == PNG_SIGNATURE
    return int(struct.unpack(">I", data[16:20])[0])


def look(browser: Any, url: str, width: int, script: bool, shot: Path) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  java_script_enabled=script)
    page = context.new_page()
    page.goto(url)
    if script:
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    page.screenshot(path=str(shot), full_page=True)
    return context, page


def test_the_first_paint_holds_the_numbers_at_desktop_and_phone_widths(
        after_a_kill: tuple[str, str, Any], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, doomed, client = after_a_kill
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            for script, width in ((False, DESKTOP), (False, PHONE), (True, PHONE),
                                  (True, DESKTOP)):  # the last one runs one more task
                shot = tmp_path / f"page-{width}-{'js' if script else 'nojs'}.png"
                context, page = look(browser, url, width, script, shot)
                check_numbers(page, get_json(url + "api/status"), doomed)
                if width == PHONE:
                    check_fits(page)
                if script and width == DESKTOP:
                    check_live_updates(page, client)
                context.close()
                assert png_width(shot.read_bytes()) == width
        finally:
            browser.close()
    desktop = (tmp_path / f"page-{DESKTOP}-js.png").read_bytes()
    assert len(desktop) > 20_000  # a page drawn, not a blank one
    if os.environ.get(WRITE_SHOT_ENV) == "1":
        DOCS_SHOT.write_bytes(stamp_png(desktop, page_sources_digest()))
        assert png_stamp(DOCS_SHOT.read_bytes()) == page_sources_digest()


def check_live_updates(page: Any, client: Any) -> None:
    """The script takes over: a task that ends shows without a reload."""
    page.evaluate("window.notReloaded = true")
    assert client.submit(tasks_mod.add, 1, 1).result(60) == 2
    wait_for(lambda: tile(page, "done") == str(QUICK + 3), 20, "the done tile to count it")
    assert page.evaluate("window.notReloaded") is True
    assert page.inner_text("#updated").startswith("updated ")
