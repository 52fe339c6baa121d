"""Hard cancel on a real cluster: a running task is stopped on whichever worker runs it (its
process killed and replaced, or its coroutine cancelled, or its thread given up on), ends
CANCELLED once, is never retried, and the worker's other tasks finish with their results.
Through the API and through `taskq cancel` as users run it; across a partition and a master
SIGKILL (the stop is journaled)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cancel_tasks
import pytest
import tasks_mod
from cluster import Cluster, pid_alive, wait_for

import taskq
from taskq.client.cancel import CancelResult
from taskq.master.journal import Journal
from taskq.master.state import BrokerState, WorkerInfo
from taskq.master.state.explain import explain
from taskq.protocol.messages import Status, TaskMsg

pytestmark = pytest.mark.timeout(180)


def _started(marker: Path, n: int = 1, timeout: float = 60) -> list[int]:
    wait_for(lambda: len(cancel_tasks.starts(str(marker))) >= n, timeout, f"{marker.name} runs")
    return cancel_tasks.starts(str(marker))


@contextmanager
def _released(*paths: Path) -> Iterator[None]:
    """Let every blocked task end when the block is left, however (so the client's exit,
    which waits for its tasks, never waits on a failed test's blocked ones)."""
    try:
        yield
    finally:
        for path in paths:
            path.touch()


def _worker_row(cluster: Cluster, pid: int) -> dict:  # type: ignore[type-arg]
    return next(w for w in cluster.status()["workers"] if w["pid"] == pid)


def test_the_journal_keeps_a_stop(tmp_path: Path) -> None:
    """A stop journaled, then a restart: the task is held for its holder and, unclaimed,
    ends CANCELLED when the hold ends; it is never queued again."""
    def new_state() -> BrokerState:
        return BrokerState(lost_after=5.0, max_lost=3, max_payload=1000)

    state = new_state()
    state.submit([TaskMsg("t1", "job:J", b"f", b"a"), TaskMsg("t2", "job:J", b"f", b"a")], 1.0)
    state.register(WorkerInfo("w", "h", 1, 1), 1.0)
    assert [m.task_id for m in state.lease("w", 1, 1.0)] == ["t1"]
    journal = Journal(tmp_path / "j.db")
    journal.write(state.drain_changes())
    assert state.stop(["t1"], 2.0).stopping == ["t1"]
    journal.write(state.drain_changes())
    journal.close()
    again = new_state()
    again.restore_hold_until = 10.0
    journal = Journal(tmp_path / "j.db")
    journal.load(again)
    journal.close()
    assert again.tasks["t1"].stop_asked and not again.tasks["t2"].stop_asked
    again.promote(11.0)
    assert "t1" not in again.tasks and again.tasks["t2"].state.value == "pending"
    assert again.outboxes["job:J"].results["t1"].status is Status.CANCELLED


def test_explain_shows_a_running_task_s_progress_and_its_stop() -> None:
    state = BrokerState(lost_after=5.0, max_lost=3, max_payload=1000)
    state.submit([TaskMsg("t1", "job:J", b"f", b"a")], 1.0)
    state.register(WorkerInfo("w", "h", 1, 1), 1.0)
    state.lease("w", 1, 1.0)
    state.start("w", ["t1"], 2.0)
    state.heartbeat("w", ["t1"], 1, 3.0, 0, {"t1": (3, 10, "parsing"), "t9": (1, 2, None)})
    state.stop(["t1"], 4.0)
    got = explain(state, "t1", 4.0)
    assert got.kind.value == "running" and got.summary.endswith("at 3/10 (30%) parsing")
    assert got.facts["progress"] == {"done": 3, "total": 10, "message": "parsing"}
    assert any("a stop was asked" in reason for reason in got.reasons)
    assert state.tasks["t1"].started_at == 2.0 and state.tasks["t1"].progress_updates == 1


@pytest.mark.slow
def test_cancel_running_task_on_second_worker(cluster: Cluster, tmp_path: Path) -> None:
    """The task runs on the second worker (2 processes) beside another task; it is stopped,
    its process replaced, and that worker's other tasks finish with their results."""
    cluster.start_master()
    cluster.start_worker()
    cluster.start_worker("--queues", "second", procs=2)
    cluster.wait_workers(2)
    on_second = taskq.task(cancel_tasks.block, queue="second", retries=2)
    go, other_go = tmp_path / "go", tmp_path / "other-go"
    victim_marker, other_marker = tmp_path / "victim", tmp_path / "other"
    with cluster.client() as client, _released(go, other_go):
        victim = client.submit(on_second, str(go), str(victim_marker), "victim")
        other = client.submit(on_second, str(other_go), str(other_marker), "other")
        [victim_pid], [other_pid] = _started(victim_marker), _started(other_marker)
        assert victim_pid != other_pid
        assert victim.cancel() is False  # the standard library's meaning: it runs
        assert client.cancel(victim) is True
        with pytest.raises(taskq.TaskCancelled, match="cancelled while it ran"):
            victim.result(60)
        assert victim.cancelled()
        wait_for(lambda: not pid_alive(victim_pid), 30, "the victim's process to die")
        # the process was replaced: a new task runs beside the other one, in a new process
        later = [client.submit(on_second, str(go), str(tmp_path / f"later{i}"), i)
                 for i in range(2)]
        markers = [str(tmp_path / f"later{i}") for i in range(2)]
        wait_for(lambda: any(map(cancel_tasks.starts, markers)), 60, "a later task to run")
        [new_pid] = [pid for m in markers for pid in cancel_tasks.starts(m)]
        assert new_pid not in (victim_pid, other_pid)
        quick = [client.submit(taskq.task(tasks_mod.add, queue="second"), i, 1)
                 for i in range(5)]
        other_go.touch()
        assert other.result(60) == "other"  # undisturbed, in its own process
        go.touch()
        assert [f.result(60) for f in later] == [0, 1]
        assert [f.result(60) for f in quick] == [1, 2, 3, 4, 5]
    assert cancel_tasks.starts(str(victim_marker)) == [victim_pid]  # never retried


@pytest.mark.slow
def test_cancel_list_ended_unknown_and_queued(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_worker(procs=2)
    cluster.wait_workers(1)
    go = tmp_path / "go"
    with cluster.client() as client, _released(go):
        done = client.submit(tasks_mod.add, 1, 2)
        assert done.result(60) == 3
        assert client.cancel(done) is False
        assert client.cancel("no-such-task") is False
        blockers = [client.submit(cancel_tasks.block, str(go), str(tmp_path / f"b{i}"))
                    for i in range(2)]
        for i in range(2):
            _started(tmp_path / f"b{i}")
        queued = client.submit(taskq.task(tasks_mod.add, queue="nobody"), 2, 2)
        out = client.cancel([done, "no-such-task", blockers[0], queued.task_id])
        assert out == {done.task_id: CancelResult.ENDED, "no-such-task": CancelResult.UNKNOWN,
                       blockers[0].task_id: CancelResult.STOPPING,
                       queued.task_id: CancelResult.CANCELLED}
        assert queued.cancelled()
        with pytest.raises(taskq.TaskCancelled):
            blockers[0].result(60)
        assert client.cancel(blockers[1], running=False) is False  # it runs
        go.touch()
        assert blockers[1].result(60) is None
        with pytest.raises(ValueError, match="bad task 3"):
            client.cancel([3])  # type: ignore[list-item]


@pytest.mark.slow
def test_cli_cancel_task_and_job(running: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with _released(go):
        _cli_cancel(running, tmp_path, go)


def _cli_cancel(running: Cluster, tmp_path: Path, go: Path) -> None:
    out = running.cli("submit", "cancel_tasks:block", str(go), str(tmp_path / "one"),
                      "--job", "one")
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.split()[-1]
    [pid] = _started(tmp_path / "one")
    out = running.cli("cancel", task_id)
    assert out.returncode == 0, out.stderr
    assert f"{task_id} stopping" in out.stdout
    wait_for(lambda: not pid_alive(pid), 30, "the task's process to die")
    out = running.cli("results", "one", "--wait", "--json", "--timeout", "60")
    assert '"status": "cancelled"' in out.stdout and out.returncode == 1
    out = running.cli("cancel", task_id)
    assert out.returncode == 1
    assert f"task {task_id} already ended (cancelled): nothing to cancel" in out.stderr
    out = running.cli("cancel", "job:nope-1")
    assert out.returncode == 1 and "no task job:nope-1 on the master" in out.stderr
    assert running.cli("cancel").returncode == 2
    out = running.cli("cancel", "--job", "nope")
    assert out.returncode == 1 and "no job named nope" in out.stderr
    # a whole job: three tasks on two one-process workers, so one has not begun
    for i in range(3):
        assert running.cli("submit", "cancel_tasks:block", str(go), str(tmp_path / f"j{i}"),
                           "--job", "many").returncode == 0
    wait_for(lambda: sum(bool(cancel_tasks.starts(str(tmp_path / f"j{i}")))
                         for i in range(3)) == 2, 60, "two tasks of the job to run")
    out = running.cli("cancel", "--job", "many")
    assert out.returncode == 0, out.stderr
    # the third may wait on the master (cancelled) or in a worker's prefetch (stopping)
    assert out.stdout.count("stopping") + out.stdout.count("cancelled: it never runs") == 3
    out = running.cli("results", "many", "--wait", "--json", "--timeout", "60")
    assert out.stdout.count('"status": "cancelled"') == 3


@pytest.mark.slow
def test_cli_cancels_a_task_of_a_client(running: Cluster, tmp_path: Path) -> None:
    """An operator stops a task some client submitted; that client's future fails."""
    with running.client() as client, _released(tmp_path / "go"):
        future = client.submit(cancel_tasks.block, str(tmp_path / "go"), str(tmp_path / "m"))
        _started(tmp_path / "m")
        out = running.cli("cancel", future.task_id)
        assert out.returncode == 0 and "stopping" in out.stdout, out.stderr
        with pytest.raises(taskq.TaskCancelled):
            future.result(60)


@pytest.mark.slow
def test_cancel_on_thread_and_asyncio_pools(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    threads = cluster.start_worker("--pool", "threads", "--queues", "t", procs=2)
    cluster.start_worker("--pool", "asyncio", "--queues", "a", procs=2)
    cluster.wait_workers(2)
    go = tmp_path / "go"
    with cluster.client() as client, _released(go):
        stuck = client.submit(taskq.task(cancel_tasks.block, queue="t"), str(go),
                              str(tmp_path / "t"))
        coro = client.submit(taskq.task(cancel_tasks.async_block, queue="a"), str(go),
                             str(tmp_path / "a"))
        _started(tmp_path / "t")
        _started(tmp_path / "a")
        assert client.cancel([stuck, coro]) == {stuck.task_id: CancelResult.STOPPING,
                                                coro.task_id: CancelResult.STOPPING}
        for future in (stuck, coro):
            with pytest.raises(taskq.TaskCancelled):
                future.result(60)
        # the coroutine is cancelled on the worker's loop, after the outcome was reported
        wait_for(lambda: (tmp_path / "a.cancelled").exists(), 30, "the coroutine's cancel")
        assert (tmp_path / "a.cancelled").read_text() == "yes"
        # a thread cannot be killed: its slot stays busy until it returns (the status shows
        # it from the worker's next heartbeat on); the other slot works
        wait_for(lambda: _worker_row(cluster, threads.pid)["busy"] == 1, 30,
                 "the cancelled thread's slot to show busy")
        assert client.submit(taskq.task(tasks_mod.add, queue="t"), 1, 1).result(60) == 2
        assert client.submit(taskq.task(tasks_mod.add, queue="a"), 2, 2).result(60) == 4
        go.touch()
        wait_for(lambda: _worker_row(cluster, threads.pid)["busy"] == 0, 30,
                 "the cancelled thread to return")
        assert stuck.cancelled()  # its late return changed nothing


@pytest.mark.slow
def test_stop_of_a_partitioned_worker(cluster: Cluster, tmp_path: Path) -> None:
    """The worker is frozen: the stop takes effect when its lease expires (CANCELLED, not
    requeued); when the worker comes back it is asked, and kills the process."""
    cluster.start_master()
    worker = cluster.start_worker()
    cluster.wait_workers(1)
    with cluster.client() as client, _released(tmp_path / "go"):
        future = client.submit(taskq.task(cancel_tasks.block, retries=3), str(tmp_path / "go"),
                               str(tmp_path / "m"))
        [pid] = _started(tmp_path / "m")
        worker.signal_group(signal.SIGSTOP)
        try:
            assert client.cancel(future) is True
            with pytest.raises(taskq.TaskCancelled, match="lease expired"):
                future.result(60)
        finally:
            worker.signal_group(signal.SIGCONT)
        wait_for(lambda: not pid_alive(pid), 60, "the stopped task's process to die")
        assert client.submit(tasks_mod.add, 1, 2).result(60) == 3
    assert cancel_tasks.starts(str(tmp_path / "m")) == [pid]


@pytest.mark.slow
def test_stop_is_journaled_across_a_master_sigkill(cluster: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    master = cluster.start_master("--state", str(journal))
    port = int(cluster.address.rsplit(":", 1)[1])
    worker = cluster.start_worker()
    cluster.wait_workers(1)
    with cluster.client() as client, _released(tmp_path / "go"):
        future = client.submit(taskq.task(cancel_tasks.block, retries=3), str(tmp_path / "go"),
                               str(tmp_path / "m"))
        [pid] = _started(tmp_path / "m")
        worker.signal_group(signal.SIGSTOP)  # the worker hears of the stop only later
        try:
            assert client.cancel(future) is True  # journaled before it answers
            master.signal_group(signal.SIGKILL)
            master.wait(30)
            cluster.start_master("--state", str(journal), port=port)
        finally:
            worker.signal_group(signal.SIGCONT)
        with pytest.raises(taskq.TaskCancelled):
            future.result(90)
        wait_for(lambda: not pid_alive(pid), 60, "the stopped task's process to die")
    assert cancel_tasks.starts(str(tmp_path / "m")) == [pid]  # it never ran again
