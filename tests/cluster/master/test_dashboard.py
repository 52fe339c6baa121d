"""The dashboard in a real headless Chromium (the distribution's package, never a download)
against a real master with two workers and a running job."""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from web_helpers import start_web_master

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs chromium (apt install it)"),
]


def progress(page: object) -> int:
    return int(page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#jobs progress", "els => els.reduce((a, e) => a + Number(e.value), 0)"))


def test_the_dashboard_shows_workers_progress_and_a_traceback(cluster: Cluster,
                                                              tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    _, url = start_web_master(cluster)
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    workers = {w["worker_id"] for w in cluster.status()["workers"]}
    origin = urllib.parse.urlsplit(url)
    requests: list[str] = []
    with cluster.client() as client, sync_api.sync_playwright() as pw:
        failing = client.submit(tasks_mod.fail, "the-dashboard-shows-this")
        futures = [client.submit(tasks_mod.sleep_then, 0.15, i) for i in range(60)]
        browser = pw.chromium.launch_persistent_context(  # a fresh profile
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": 1280, "height": 1000})
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            for worker_id in workers:
                page.wait_for_selector(f"#workers td:text-is('{worker_id}')", timeout=10_000)
            first = progress(page)
            wait_for(lambda: progress(page) > first, 20, "the job's progress to advance")
            assert not all(f.done() for f in futures)  # it advanced while the job ran
            with pytest.raises(KeyError):
                failing.result(30)
            page.wait_for_selector("#failed pre:has-text('the-dashboard-shows-this')",
                                   timeout=10_000)
            assert "KeyError" in page.inner_text("#failed")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            page.click("#failed a")
            page.wait_for_selector("#attempts td:has-text('raised')", timeout=10_000)
            page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
        finally:
            browser.close()
        for f in futures:
            f.result(60)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert requests and all(urllib.parse.urlsplit(r).netloc == origin.netloc
                            for r in requests), requests
