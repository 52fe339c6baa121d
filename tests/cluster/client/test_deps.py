"""Tasks that depend on tasks, end to end: futures as arguments on a real cluster."""

from __future__ import annotations

import signal
from pathlib import Path

import dep_tasks
import pytest
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def test_fan_in_fan_out_and_three_levels(running: Cluster) -> None:
    with running.client() as client:
        words = ["a", "bb", "ccc", "dddd"]
        report = client.submit(dep_tasks.report, [client.submit(dep_tasks.parse, w)
                                                  for w in words])
        assert report.result(60) == 10
        base = client.submit(dep_tasks.double, 3)
        fanned = [client.submit(dep_tasks.double, base) for _ in range(20)]
        assert [f.result(60) for f in fanned] == [12] * 20
        level1 = [client.submit(dep_tasks.double, i) for i in range(4)]
        level2 = [client.submit(dep_tasks.report, level1[:k + 1]) for k in range(4)]
        top = client.submit(dep_tasks.report, level2)
        assert top.result(60) == 0 + 2 + 6 + 12


def test_futures_inside_containers_and_keywords(running: Cluster) -> None:
    with running.client() as client:
        one, two = client.submit(dep_tasks.double, 1), client.submit(dep_tasks.double, 2)
        got = client.submit(dep_tasks.total, {"x": one, "y": 10}, (two, one),
                            frozenset([two])).result(60)
        assert got == 2 + 10 + 4 + 2 + 4
        parts, named = client.submit(dep_tasks.combine, [[one]], key={"deep": (two,)}
                                     ).result(60)
        assert parts == ([[2]],) and named == {"key": {"deep": (4,)}}
        same = client.submit(dep_tasks.combine, one, one).result(60)  # one dependency
        assert same == ((2, 2), {})
        assert client.submit(dep_tasks.double, one).result(60) == 4  # already done: a value


def test_map_with_futures(running: Cluster) -> None:
    with running.client() as client:
        inputs = [client.submit(dep_tasks.double, i) for i in range(10)]
        assert list(client.map(dep_tasks.double, inputs)) == [4 * i for i in range(10)]
        chunked = [client.submit(dep_tasks.double, i) for i in range(10)]
        assert list(client.map(dep_tasks.double, chunked, chunksize=4)) == [
            4 * i for i in range(10)]


def test_a_failed_dependency_fails_its_dependents_and_they_never_run(
        running: Cluster, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with running.client() as client:
        gate = tmp_path / "gate"
        bad = client.submit(dep_tasks.wait_for_file, str(gate), None)
        failing = client.submit(dep_tasks.combine, bad, client.submit(dep_tasks.boom, "no"))
        child = client.submit(dep_tasks.touch, str(marks), "child", failing)
        grandchild = client.submit(dep_tasks.touch, str(marks), "grandchild", child)
        gate.write_text("go")
        with pytest.raises(taskq.DependencyFailed) as info:
            child.result(60)
        assert info.value.dependency == failing.task_id
        assert isinstance(info.value.__cause__, taskq.DependencyFailed)
        assert isinstance(info.value.__cause__.__cause__, ValueError)
        with pytest.raises(taskq.DependencyFailed) as deeper:
            grandchild.result(60)
        assert deeper.value.dependency == child.task_id
        assert bad.result(60) is None
        assert client.submit(dep_tasks.double, 4).result(60) == 8  # the cluster goes on
    assert sorted(p.name for p in marks.iterdir()) == []  # neither dependent ever ran


def test_a_cancelled_dependency_and_an_already_failed_one(running: Cluster) -> None:
    with running.client() as client:
        later = client.submit_after(600, dep_tasks.double, 1)  # waits on the master
        dependent = client.submit(dep_tasks.double, later)
        assert later.cancel()
        with pytest.raises(taskq.DependencyFailed) as info:
            dependent.result(60)
        assert info.value.dependency == later.task_id
        assert isinstance(info.value.__cause__, taskq.TaskCancelled)
        failed = client.submit(dep_tasks.boom, "early")
        with pytest.raises(ValueError):
            failed.result(60)
        at_once = client.submit(dep_tasks.double, failed)  # never sent: fails at once
        assert at_once.done()
        with pytest.raises(taskq.DependencyFailed) as early:
            at_once.result(0)
        assert isinstance(early.value.__cause__, ValueError)


def test_another_clients_task_by_id_and_bad_dependencies(running: Cluster,
                                                         tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with running.client() as owner, running.client() as other:
        theirs = owner.submit(dep_tasks.wait_for_file, str(gate), 21)
        failing = owner.submit(dep_tasks.boom, "theirs")
        seen = other.future(theirs.task_id)
        assert seen is not None
        doubled = other.submit(dep_tasks.double, seen)
        gate.write_text("go")
        assert doubled.result(60) == 42 and seen.result(60) == 21
        assert theirs.result(60) == 21
        seen_failing = other.future(failing.task_id)
        assert seen_failing is not None
        with pytest.raises(ValueError, match="theirs"):
            seen_failing.result(60)
        with pytest.raises(taskq.DependencyError, match="knows no task"):
            other.future("client-0123456789abcdef-1")
        assert other.future(doubled.task_id) is None  # its own, ended: as before
    with running.client() as closed_one:
        pending = closed_one.submit(dep_tasks.double, 1)
    with running.client() as client:
        with pytest.raises(taskq.DependencyError, match="shut down"):
            client.submit(dep_tasks.double, pending)
        with pytest.raises(taskq.SerializationError, match="only as an argument"):
            client.schedule("never", dep_tasks.double, client.submit(dep_tasks.double, 1),
                            every=60)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_master_sigkilled_mid_graph_completes_it_and_reruns_nothing_that_ended(
        cluster: Cluster, tmp_path: Path) -> None:
    journal, marks, gate = tmp_path / "journal.db", tmp_path / "marks", tmp_path / "gate"
    marks.mkdir()
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_workers(2)
    with cluster.client() as client:
        level1 = [client.submit(dep_tasks.record, str(marks), f"a{i}") for i in range(6)]
        blocker = client.submit(dep_tasks.wait_for_file, str(gate), "g", 150)
        level2 = [client.submit(dep_tasks.record, str(marks), f"b{i}", a, blocker)
                  for i, a in enumerate(level1)]
        top = client.submit(dep_tasks.record, str(marks), "top", level2)
        assert [f.result(60)[0] for f in level1] == [f"a{i}" for i in range(6)]
        # a journaled submit returns once every earlier change is durable too
        assert cluster.cli("submit", "dep_tasks:double", "1", "--job", "sync").returncode == 0
        assert not any(f.done() for f in level2)
        master.signal_group(signal.SIGKILL)
        master.wait(30)
        cluster.start_master("--state", str(journal), port=port)
        gate.write_text("go")
        name, *rest = top.result(120)
        assert name == "top" and [b[:2] for b in rest[0]] == [
            [f"b{i}", [f"a{i}"]] for i in range(6)]
    for i in range(6):
        assert dep_tasks.runs(str(marks), f"a{i}") == 1
        assert dep_tasks.runs(str(marks), f"b{i}") == 1
    assert dep_tasks.runs(str(marks), "top") == 1


@pytest.mark.slow
def test_a_lost_worker_running_a_dependency_only_delays_its_dependents(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    first = cluster.start_worker()
    cluster.wait_workers(1)
    gate = tmp_path / "gate"
    with cluster.client() as client:
        dep = client.submit(dep_tasks.wait_for_file, str(gate), 5)
        wait_for(dep.running, 30, "the dependency to run")
        dependents = [client.submit(dep_tasks.double, dep) for _ in range(3)]
        cluster.start_worker()
        cluster.wait_workers(2)
        first.signal_group(signal.SIGKILL)
        gate.write_text("go")
        assert [f.result(60) for f in dependents] == [10, 10, 10]
        assert dep.result(0) == 5


def test_a_graph_beyond_max_pending_is_refused_with_the_limit(cluster: Cluster,
                                                              tmp_path: Path) -> None:
    cluster.start_master("--max-pending", "3")
    cluster.start_worker()
    cluster.wait_workers(1)
    gate = tmp_path / "gate"
    with cluster.client() as client:
        try:
            root = client.submit(dep_tasks.wait_for_file, str(gate), 1)
            dependents = [client.submit(dep_tasks.double, root) for _ in range(4)]
            with pytest.raises(taskq.TaskRefused, match="--max-pending is 3"):
                dependents[3].result(60)
            assert cluster.status()["blocked"] == 3
        finally:
            gate.write_text("go")
        assert [f.result(60) for f in dependents[:3]] == [2, 2, 2]
