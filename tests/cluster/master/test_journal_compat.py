"""A journal written by taskq 0.1 (``tests/fixtures/journal-0.1.db``, made by
``tests/fixtures/make_journal_0_1.py`` with that release's code) opens with this one, and its
pending, delayed and blocked tasks and its schedule run: each exactly once. Its blocked task's
arguments name ``taskq.dependencies._dependency``, as 0.1 pickled them."""

from __future__ import annotations

import json
import shutil

import tasks_mod
from cluster import ROOT, Cluster, wait_for

FIXTURE = ROOT / "tests" / "fixtures" / "journal-0.1.db"


def test_a_journal_of_the_previous_release_opens_and_its_tasks_run(cluster: Cluster) -> None:
    journal = cluster.tmp / "journal.db"
    shutil.copy(FIXTURE, journal)
    cluster.start_master("--state", str(journal))
    schedules = json.loads(cluster.cli("schedule", "list", "--json").stdout)
    assert [s["name"] for s in schedules] == ["hourly"]
    cluster.start_worker()
    runs = str(cluster.tmp)  # where the worker runs: every task writes a file there
    wait_for(lambda: all(tasks_mod.runs_of(runs, name) for name in ("pending", "delayed")),
             60, "the pending and delayed tasks to run")
    wait_for(lambda: (cluster.tmp / "blocked").exists(), 60, "the blocked task to run")
    assert (cluster.tmp / "blocked").read_text() == "ran"
    assert [tasks_mod.runs_of(runs, n) for n in ("pending", "delayed")] == [1, 1]
