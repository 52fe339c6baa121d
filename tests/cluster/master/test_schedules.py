"""Schedules run by a real master: from the API and the CLI, each tick once, across a killed
master, with bad definitions refused at the call."""

from __future__ import annotations

import itertools
import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(120)


def test_a_schedule_runs_until_it_is_removed(running: Cluster, tmp_path: Path) -> None:
    runs = str(tmp_path)
    with running.client() as client:
        assert client.schedule("tick", tasks_mod.mark_run, runs, "tick",
                               every=timedelta(seconds=1)) is False
        assert client.schedule("tick", tasks_mod.mark_run, runs, "tick", every=0.5) is True
        wait_for(lambda: tasks_mod.runs_of(runs, "tick") >= 3, 30, "three runs")
        (spec,) = client.schedules()
        assert (spec.name, spec.every, spec.last_outcome) == ("tick", 0.5, "ok")
        assert spec.fn == b"" and spec.next_run > spec.last_run
        assert client.unschedule("tick") and not client.unschedule("tick")
        seen = tasks_mod.runs_of(runs, "tick")
        # a task due after two more ticks would have been made: none is
        assert client.submit_after(1.2, tasks_mod.add, 1, 1).result(30) == 2
        assert tasks_mod.runs_of(runs, "tick") <= seen + 1  # at most the tick then running
        with pytest.raises(ValueError, match="bad cron expression"):
            client.schedule("bad", tasks_mod.add, 1, cron="every day")
        with pytest.raises(ValueError, match="unknown time zone"):
            client.schedule("bad", tasks_mod.add, 1, cron="0 2 * * *", tz="Nowhere/City")
        assert client.schedules() == []


def test_each_tick_runs_once_across_a_killed_master(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    cluster.wait_workers(1)
    runs = tmp_path / "runs"
    runs.mkdir()
    out = cluster.cli("schedule", "add", "beat", "tasks_mod:mark_run", str(runs), "beat",
                      "0.2", "--every", "0.5s")  # each run takes 0.2 s
    assert out.returncode == 0 and "added" in out.stdout, out.stderr
    for kill in range(3):  # each time the moment a tick's task begins: its riskiest
        before = tasks_mod.runs_of(str(runs), "beat")
        wait_for(lambda n=before: tasks_mod.runs_of(str(runs), "beat") > n, 30, f"run {kill}")
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        master = cluster.start_master("--state", str(journal), port=port)
    before = tasks_mod.runs_of(str(runs), "beat")
    wait_for(lambda: tasks_mod.runs_of(str(runs), "beat") >= before + 2, 30, "runs again")
    listed = json.loads(cluster.cli("schedule", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["beat"] and listed[0]["every"] == 0.5
    assert cluster.cli("schedule", "pause", "beat").returncode == 0

    def settled() -> bool:
        status = cluster.status()
        return not (sum(status["pending"].values()) or status["waiting"] or status["leased"])

    wait_for(settled, 30, "the last tick's task to end")
    results = cluster.cli("results", "schedule:beat", "--json")
    ticks = sorted(float(json.loads(line)["task_id"].rsplit(":", 1)[1])
                   for line in results.stdout.splitlines())
    steps = [round((b - a) / 0.5, 3) for a, b in itertools.pairwise(ticks)]
    assert steps and all(s >= 1 and s == int(s) for s in steps), ticks  # one task per tick
    assert tasks_mod.runs_of(str(runs), "beat") == len(ticks)  # no tick ran twice
    assert cluster.cli("schedule", "remove", "beat").returncode == 0
    gone = cluster.cli("schedule", "remove", "beat")
    assert gone.returncode == 1 and "no schedule named beat" in gone.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--cron", "99 * * * *"], "bad cron expression"),
    (["--cron", "0 2 30 2 *"], "never comes"),  # refused here, never a traceback in the master
    (["--cron", "0 2 * * *", "--tz", "Atlantis/Capital"], "unknown time zone"),
    (["--every", "ten"], "bad duration"),
    ([], "either cron or every"),
])
def test_the_cli_refuses_a_bad_schedule_in_one_line(running: Cluster, args: list[str],
                                                     message: str) -> None:
    out = running.cli("schedule", "add", "bad", "tasks_mod:add", "1", *args)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert message in line, line
