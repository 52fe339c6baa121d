"""The master's /healthz, in process: a web server on loopback with a token, a broker that
only answers for /metrics, and the journal's own answer to whether it can be written."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from taskq.master import http
from taskq.master.journal import Journal
from taskq.protocol.api import BrokerAPI

TOKEN = "a-web-token-that-must-not-leak"


class Snapshots:
    def metrics(self) -> dict[str, Any]:
        return {"counters": {}, "depth": {}, "running": {}, "desired": {}, "workers": {},
                "wait": {}, "run": {}, "commit": None}


class Probe:
    def __init__(self) -> None:
        self.reason: str | None = None

    def problem(self) -> str | None:
        return self.reason


@pytest.fixture
def web() -> Iterator[http.WebServer]:
    config = http.HttpConfig("127.0.0.1", 0, token=TOKEN)
    server = http.serve(config, cast("BrokerAPI", Snapshots()))
    try:
        yield server
    finally:
        http.stop(server)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_needs_no_token_and_waits_for_the_task_port(web: http.WebServer) -> None:
    assert get(web.url + "healthz") == (503, "the task port is not accepting connections\n")
    web.health.accepting = lambda: True
    assert get(web.url + "healthz") == (200, "ok\n")
    assert get(web.url + "api/status")[0] == 401  # everything else still asks for it


def test_healthz_reports_the_journals_problem_and_no_secret(web: http.WebServer) -> None:
    probe = Probe()
    web.health.accepting = lambda: True
    web.health.journal = probe
    assert get(web.url + "healthz") == (200, "ok\n")
    probe.reason = "the journal's file is not writable"
    status, body = get(web.url + "healthz")
    assert (status, body) == (503, "the journal's file is not writable\n")
    assert TOKEN not in body


def test_a_journal_says_when_it_cannot_be_written(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    journal = Journal(folder / "journal.db")
    try:
        assert journal.problem() is None
        shutil.rmtree(folder)  # the volume went away under it
        assert journal.problem() == "the journal's file is not writable"
    finally:
        journal.close()
    assert journal.problem() == "the journal's writer has stopped"
