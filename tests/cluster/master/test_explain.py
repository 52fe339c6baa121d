"""``taskq explain``: every answer the broker's state can give, on the pure state, then on a
real cluster through the command line and the JSON API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for
from state_helpers import join, make_state, ok, task

from taskq.master.state import WorkerInfo
from taskq.master.state.explain import explain
from taskq.master.state.limits import QueueLimit
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions
from taskq.protocol.replies import ExplainKind

pytestmark = pytest.mark.timeout(90)


def with_options(task_id: str, **options: object) -> TaskMsg:
    return TaskMsg(task_id, "box", b"f", b"a", TaskOptions(**options))  # type: ignore[arg-type]


def test_queued_counts_the_tasks_ahead_by_priority_then_arrival() -> None:
    state = make_state()
    join(state, "w1")
    state.submit([task("a"), task("b"), task("c", priority=5), task("d")], now=0)
    answer = explain(state, "d", now=1)
    assert answer.kind is ExplainKind.QUEUED
    assert answer.facts["ahead"] == 3 and answer.facts["workers"] == ["w1"]
    assert "behind 3 tasks" in answer.summary
    assert explain(state, "c", now=1).facts["ahead"] == 0  # higher priority goes first
    assert explain(state, "a", now=1).facts["ahead"] == 1


def test_no_worker_serves_the_queue_says_how_to_start_one() -> None:
    state = make_state()
    join(state, "w1", queues=("default",))
    state.submit([task("a", queue="gpu")], now=0)
    answer = explain(state, "a", now=1)
    assert answer.kind is ExplainKind.NO_WORKER
    assert "taskq worker --queues gpu" in answer.summary
    assert answer.facts["workers"] == []


def test_limits_name_the_limit_that_holds_the_task() -> None:
    state = make_state()
    state.register(WorkerInfo("w1", "host", 1, 4, ("default",)), 0)
    state.limits.set("default", QueueLimit(concurrency=1))
    state.submit([task("a"), task("b")], now=0)
    assert [m.task_id for m in state.lease("w1", 4, now=0)] == ["a"]
    answer = explain(state, "b", now=1)
    assert answer.kind is ExplainKind.LIMITED
    assert "concurrency limit: 1 of 1 running" in answer.summary

    state.limits.set("default", QueueLimit(rate=0.5))
    state.submit([with_options("k1", limit_key="db", limit=1),
                  with_options("k2", limit_key="db", limit=1)], now=1)
    leased = [m.task_id for m in state.lease("w1", 4, now=1)]
    held = next(t for t in ("b", "k1", "k2") if t not in leased)
    reasons = " | ".join(explain(state, held, now=1).reasons)
    assert "rate-limited to 0.5/s" in reasons


def test_a_task_needing_more_than_any_worker_has_says_so() -> None:
    state = make_state()
    join(state, "w1")
    state.submit([with_options("g", resources=(("gpu", 2.0),))], now=0)
    answer = explain(state, "g", now=0)
    assert answer.kind is ExplainKind.LIMITED
    assert answer.summary == "needs gpu=2: no connected worker has that much"


def test_waiting_delayed_retry_and_restart_hold() -> None:
    state = make_state()
    join(state, "w1")
    state.wall_offset = 1_000_000.0
    state.submit([with_options("later", run_at=1_000_100.0)], now=0)
    delayed = explain(state, "later", now=0)
    assert delayed.kind is ExplainKind.DELAYED
    assert delayed.facts["until"] == pytest.approx(1_000_100.0)

    state.submit([with_options("r", retries=2, backoff=10.0, jitter=False)], now=0)
    state.lease("w1", 1, now=0)
    state.complete("w1", [ResultMsg("r", Status.ERROR, b"x", detail="Traceback\nOSError: no")],
                   now=1)
    retry = explain(state, "r", now=1)
    assert retry.kind is ExplainKind.RETRY_WAIT
    assert "retry 1 of 2" in retry.summary and "OSError" in retry.summary
    assert retry.facts["until"] == pytest.approx(1_000_011.0)

    restored = make_state()
    restored.restore_hold_until = 5.0
    restored.restore_task(task("back"), seq=1, lost=0, errors=0, holder="w9")
    restored.restore_task(task("free"), seq=2, lost=0, errors=0)  # no worker held it
    assert explain(restored, "back", now=0).kind is ExplainKind.RESTORED
    assert explain(restored, "free", now=0).kind is ExplainKind.NO_WORKER


def test_leased_running_ended_joined_and_unknown() -> None:
    state = make_state()
    join(state, "w1")
    state.submit([task("a"), with_options("u1", unique="k"), with_options("u2", unique="k")],
                 now=0)
    state.lease("w1", 1, now=0)
    leased = explain(state, "a", now=0)
    assert leased.kind is ExplainKind.LEASED and leased.facts["worker"] == "w1"
    state.start("w1", ["a"])
    running = explain(state, "a", now=0)
    assert running.kind is ExplainKind.RUNNING and "w1 (host, pid 1)" in running.summary
    state.complete("w1", [ok("a")], now=2)
    ended = explain(state, "a", now=2)
    assert ended.kind is ExplainKind.ENDED
    assert ended.facts["outcome"] == "ok" and ended.facts["attempts"] == 1
    assert ended.reasons[-1] == "its result waits to be fetched by 'box'"

    assert explain(state, "u2", now=2).kind is ExplainKind.JOINED
    assert explain(state, "u2", now=2).facts["target"] == "u1"
    assert explain(state, "nope", now=2).kind is ExplainKind.UNKNOWN


def test_explain_on_a_real_cluster_from_the_command_line(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker()
    cluster.wait_workers(1)
    release = tmp_path / "release"
    client = cluster.client()
    try:
        running = client.submit(tasks_mod.hold_until, str(release))
        wait_for(running.running, 30, "the held task to start")
        queued = cluster.cli("submit", "tasks_mod:add", "1", "2", "--job", "ex")
        queued_id = queued.stdout.split()[-1]
        elsewhere = cluster.cli("submit", "tasks_mod:add", "1", "--queue", "nobody")
        elsewhere_id = elsewhere.stdout.split()[-1]

        shown = cluster.cli("explain", running.task_id)
        assert shown.returncode == 0 and "running on worker" in shown.stdout
        dependent = client.submit(tasks_mod.echo, running)
        wait_for(lambda: "waiting for 1 of its 1 dependencies" in cluster.cli(
            "explain", dependent.task_id).stdout, 30, "the dependent to be explained")
        behind = json.loads(cluster.cli("explain", queued_id, "--json").stdout)
        if behind["kind"] == "leased":  # the worker took it ahead of a free process
            assert "waiting for a free slot in its pool" in behind["summary"]
        else:
            assert behind["kind"] == "queued" and behind["facts"]["free_slots"] == 0
            assert any("are busy" in r for r in behind["reasons"])
        nobody = cluster.cli("explain", elsewhere_id)
        assert "no worker serves queue 'nobody'" in nobody.stdout

        release.touch()
        assert running.result(timeout=30) == str(release)
        assert dependent.result(timeout=30) == ((str(release),), {})
        wait_for(lambda: "ended ok" in cluster.cli("explain", queued_id).stdout, 30,
                 "the queued task to end")
        unknown = cluster.cli("explain", "no-such-task")
        assert unknown.returncode == 1 and unknown.stdout == ""
        (line,) = unknown.stderr.strip().splitlines()  # an error: one line, on stderr
        assert line.startswith("taskq: error: ") and "knows no task no-such-task" in line
    finally:
        release.touch()
        client.shutdown()


def test_waiting_for_dependencies_names_each_and_where_it_is() -> None:
    state = make_state()
    join(state, "w1")
    state.submit([task("box-a"), task("box-b")], now=0)
    state.submit([TaskMsg("box-c", "box", b"f", b"a", TaskOptions(),
                          deps=("box-a", "box-b"))], now=0)
    state.lease("w1", 1, now=0)
    state.start("w1", ["box-a"])
    answer = explain(state, "box-c", now=0)
    assert answer.kind is ExplainKind.WAITING_DEPS
    assert answer.facts["waiting_for"] == {"box-a": "running", "box-b": "queued"}
    assert answer.summary.startswith("waiting for 2 of its 2 dependencies to end")

    state.note_progress("w1", {"box-a": (3.0, 10.0, "parsing")})
    running = explain(state, "box-a", now=0)
    assert running.facts["progress"] == {"done": 3.0, "total": 10.0, "message": "parsing"}
    assert running.summary.endswith("at 3/10 (30%) parsing")
    state.complete("w1", [ok("box-a")], now=1)
    after = explain(state, "box-c", now=1)
    assert after.facts["waiting_for"] == {"box-b": "queued"}
    assert "1 ended OK" in after.reasons[1]
