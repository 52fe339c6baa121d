"""`taskq submit ... --in 10 minutes`: a unit word is part of the duration, never an argument
of the function."""

from __future__ import annotations

import pytest
from cluster import Cluster

pytestmark = pytest.mark.timeout(120)


def test_an_unquoted_unit_word_is_refused_and_nothing_is_submitted(cluster: Cluster) -> None:
    cluster.start_master()
    out = cluster.cli("submit", "tasks_mod:echo", "--in", "10", "minutes", "--job", "later")
    assert out.returncode == 2, (out.stdout, out.stderr)
    (line,) = out.stderr.splitlines()
    assert "--in '10 minutes'" in line and "'minutes' would be passed" in line, line
    status = cluster.status()
    assert status["waiting"] == 0 and sum(status["pending"].values()) == 0, status


def test_a_quoted_duration_in_words_delays_the_task_and_passes_no_word_on(
        cluster: Cluster) -> None:
    cluster.start_master()
    out = cluster.cli("submit", "tasks_mod:echo", "--in", "5 seconds", "--job", "soon")
    assert out.returncode == 0, out.stderr
    assert cluster.status()["waiting"] == 1  # delayed, not queued
    cluster.start_worker()
    got = cluster.cli("results", "soon", "--wait", "--timeout", "60")
    assert got.returncode == 0, got.stderr
    (line,) = got.stdout.splitlines()
    assert line.split("\t")[1:] == ["ok", "((), {})"], line
