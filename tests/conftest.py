"""Shared fixtures: a real cluster per test, and a check that no process outlives a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, wait_for

from bench.procs import process_stats


def _is_forkserver(pid: str) -> bool:
    """The stdlib's forkserver and resource tracker live as long as the test process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
            return b"multiprocessing.forkserver" in cmdline or \
                b"multiprocessing.resource_tracker" in cmdline
    except OSError:
        return False


def _children() -> set[int]:
    me = str(os.getpid())
    return {pid for pid, fields in process_stats()
            if fields[1] == me and fields[0] != "Z" and not _is_forkserver(str(pid))}


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    before = _children()
    yield
    wait_for(lambda: _children() <= before, 15, "processes started by the test to exit")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """A master and two one-process workers, ready."""
    cluster.start_master()
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    return cluster


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A browser test skipped for want of Chromium is said at the end, where it is seen."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "chromium" in str(getattr(r, "longrepr", "")).lower()]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} dashboard browser test(s) SKIPPED: "
                                   "no Chromium here (apt-get install -y chromium)",
                                   red=True, bold=True)
