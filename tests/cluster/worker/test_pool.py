"""ProcessPool with real processes: every job ends exactly once, and the right way."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pool_runners import run

from taskq.worker.pools.process import Job, Outcome, OutcomeKind, ProcessPool

TESTS = ROOT / "tests"
ROOT = TESTS.parent


# ----------------------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (an orphan not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _until(condition: Callable[[], bool], within: float) -> bool:
    """Poll ``condition`` until it holds or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _reap_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _collect(pool: ProcessPool, count: int, within: float = 20.0) -> dict[str, Outcome]:
    """Gather ``count`` outcomes; fail on a duplicate or on running out of time."""
    seen: dict[str, Outcome] = {}
    deadline = time.monotonic() + within
    while len(seen) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(seen)} of {count} outcomes arrived"
        for outcome in pool.get_outcomes(min(left, 1.0)):
            assert outcome.task_id not in seen, f"{outcome.task_id} resolved twice"
            seen[outcome.task_id] = outcome
    return seen


@contextlib.contextmanager
def _pool(procs: int, **kwargs: Any) -> Iterator[ProcessPool]:
    pool = ProcessPool(procs, run, **kwargs)
    pool.start()
    try:
        yield pool
    finally:
        pool.kill()


def _crash(outcome: Outcome, *words: str) -> None:
    assert outcome.kind is OutcomeKind.CRASHED, outcome
    for word in words:
        assert word in outcome.detail, outcome


@pytest.fixture(scope="module", autouse=True)
def _forkserver() -> None:
    """Start the forkserver (and the resource tracker it brings) before any test runs.

    Both live as long as this test process, like any owner's; starting them up front keeps
    them out of the per-test check that no process outlives its test.
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["taskq.worker.pools.process", "pool_runners"])
    multiprocessing.forkserver.ensure_running()


# ------------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
def test_thousand_jobs_on_two_procs_each_resolve_once_with_their_value() -> None:
    with _pool(2) as pool:
        for i in range(1000):
            pool.submit(Job(f"t{i}", ("value", i * 7)))
        seen = _collect(pool, 1000, within=50)
        assert all(seen[f"t{i}"].kind is OutcomeKind.DONE for i in range(1000))
        assert [seen[f"t{i}"].value for i in range(1000)] == [i * 7 for i in range(1000)]
        assert pool.in_flight() == 0
        assert pool.get_outcomes(0.05) == []


@pytest.mark.timeout(30)
def test_a_job_goes_to_the_least_loaded_child() -> None:
    with _pool(2) as pool:
        pool.submit(Job("slow", ("sleep_pid", 2)))
        assert _until(lambda: pool.running() == 1, 10)
        pool.submit(Job("fast", ("pid",)))  # to the idle child, not behind "slow"
        seen = _collect(pool, 2)
        assert seen["fast"].value != seen["slow"].value


@pytest.mark.timeout(30)
def test_exit_crashes_only_its_job_and_the_jobs_behind_it_still_run() -> None:
    with _pool(1) as pool:  # one child, depth 2: "behind" is written to the same child
        pool.submit(Job("before", ("pid",)))
        first_pid = _collect(pool, 1)["before"].value
        pool.submit(Job("exit", ("exit", 3)))
        pool.submit(Job("behind", ("value", "b")))
        pool.submit(Job("after", ("pid",)))
        seen = _collect(pool, 3)
        _crash(seen["exit"], "exited with code 3")
        assert seen["exit"].duration >= 0
        assert (seen["behind"].kind, seen["behind"].value) == (OutcomeKind.DONE, "b")
        assert seen["after"].kind is OutcomeKind.DONE
        assert seen["after"].value != first_pid
        assert pool.in_flight() == 0


@pytest.mark.timeout(30)
def test_sigkill_of_the_child_is_reported_with_the_signal_name() -> None:
    with _pool(2) as pool:
        pool.submit(Job("kill", ("kill",)))
        pool.submit(Job("next", ("value", 1)))
        seen = _collect(pool, 2)
        _crash(seen["kill"], "process killed by signal SIGKILL")
        assert "memory" not in seen["kill"].detail  # the kernel counted no OOM kill here
        assert seen["next"].value == 1


@pytest.mark.timeout(30)
def test_a_raising_runner_is_a_crash_but_the_child_stays() -> None:
    with _pool(1) as pool:
        pool.submit(Job("a", ("pid",)))
        pool.submit(Job("boom", ("raise", "no luck")))
        pool.submit(Job("b", ("pid",)))
        seen = _collect(pool, 3)
        _crash(seen["boom"], "runner raised ValueError: no luck")
        assert seen["a"].value == seen["b"].value


@pytest.mark.timeout(30)
def test_a_job_past_its_timeout_is_killed_and_the_pool_goes_on() -> None:
    with _pool(1) as pool:
        start = time.monotonic()
        pool.submit(Job("slow", ("sleep", 30), timeout=0.5))
        pool.submit(Job("behind", ("value", 2), timeout=5))
        seen = _collect(pool, 1)
        elapsed = time.monotonic() - start
        slow = seen["slow"]
        assert slow.kind is OutcomeKind.TIMED_OUT, slow
        assert slow.detail == "ran past its 0.5 s timeout; its process was killed"
        assert 0.5 <= elapsed <= 2.5
        assert 0.5 <= slow.duration <= 2.5
        assert _collect(pool, 1)["behind"].value == 2
        pool.submit(Job("after", ("value", 3)))
        assert _collect(pool, 1)["after"].value == 3


@pytest.mark.timeout(30)
def test_timeout_counts_from_when_the_job_starts_not_when_it_was_written() -> None:
    with _pool(1) as pool:
        pool.submit(Job("first", ("sleep", 0.6)))
        pool.submit(Job("second", ("sleep", 0.3), timeout=0.5))  # queued 0.6 s, runs 0.3 s
        seen = _collect(pool, 2)
        assert seen["first"].kind is OutcomeKind.DONE
        assert seen["second"].kind is OutcomeKind.DONE, seen["second"]


@pytest.mark.timeout(30)
def test_a_big_payload_waits_for_an_idle_child_instead_of_stalling_the_pool() -> None:
    # Writing 8 MiB into the pipe of a child busy with a 3 s job would block the pool until
    # that job ended, and the 0.5 s timeout of that job would be missed.
    big = b"p" * (8 * 2**20)
    with _pool(1) as pool:
        pool.submit(Job("slow", ("sleep", 3), timeout=0.5))
        assert _until(lambda: pool.running() == 1, 10)
        pool.submit(Job("big", ("value", big)))
        seen = _collect(pool, 2)
        assert seen["slow"].kind is OutcomeKind.TIMED_OUT
        assert seen["slow"].duration < 2  # on time: the pool was not stuck writing "big"
        assert seen["big"].kind is OutcomeKind.DONE
        assert seen["big"].value == big


@pytest.mark.timeout(30)
def test_large_results_arrive_whole() -> None:
    with _pool(2) as pool:
        sizes = [0, 1, 70_000, 3 * 2**20, 20 * 2**20, 5]
        for i, size in enumerate(sizes):
            pool.submit(Job(f"r{i}", ("bytes", size)))
        seen = _collect(pool, len(sizes))
        assert [seen[f"r{i}"].value for i in range(len(sizes))] == [b"r" * n for n in sizes]


@pytest.mark.timeout(30)
def test_unpicklable_payloads_and_results() -> None:
    with _pool(1) as pool:
        with pytest.raises(Exception, match="pickle"):
            pool.submit(Job("bad", lambda: None))
        assert pool.in_flight() == 0
        pool.submit(Job("lambda", ("lambda",)))
        pool.submit(Job("fine", ("value", 1)))
        seen = _collect(pool, 2)
        _crash(seen["lambda"], "result could not be pickled")
        assert seen["fine"].value == 1


@pytest.mark.timeout(30)
def test_children_ignore_sigint() -> None:
    with _pool(1) as pool:
        pool.submit(Job("a", ("pid",)))
        pid = _collect(pool, 1)["a"].value
        os.kill(pid, signal.SIGINT)
        pool.submit(Job("b", ("pid",)))
        assert _collect(pool, 1)["b"].value == pid


@pytest.mark.timeout(30)
def test_max_tasks_per_child_retires_children_without_losing_jobs() -> None:
    with _pool(2, max_tasks_per_child=3) as pool:
        for i in range(20):
            pool.submit(Job(f"t{i}", ("pid",)))
        seen = _collect(pool, 20)
        assert all(o.kind is OutcomeKind.DONE for o in seen.values())
        pids = [o.value for o in seen.values()]
        assert len(set(pids)) >= 6
        assert max(pids.count(pid) for pid in set(pids)) <= 3


@pytest.mark.timeout(30)
def test_a_child_over_the_memory_limit_is_replaced() -> None:
    with _pool(1, max_memory_mb=120) as pool:
        pool.submit(Job("small", ("pid",)))
        small = _collect(pool, 1)["small"].value
        pool.submit(Job("still", ("pid",)))
        assert _collect(pool, 1)["still"].value == small
        pool.submit(Job("big", ("alloc", 200)))
        big = _collect(pool, 1)["big"]
        assert (big.kind, big.value) == (OutcomeKind.DONE, small)
        pool.submit(Job("after", ("pid",)))
        assert _collect(pool, 1)["after"].value != small


@pytest.mark.timeout(30)
def test_take_back_returns_the_jobs_not_written_to_any_child() -> None:
    with _pool(1, depth=1) as pool:
        pool.submit(Job("busy", ("sleep", 30)))
        assert _until(lambda: pool.running() == 1, 10)
        queued = [Job(f"q{i}", ("value", i)) for i in range(5)]
        for job in queued:
            pool.submit(job)
        assert pool.in_flight() == 6
        assert pool.take_back() == queued
        assert pool.in_flight() == 1
        assert pool.take_back() == []
        assert [job.task_id for job in pool.stop(0.1)] == ["busy"]
        assert pool.in_flight() == 0


@pytest.mark.timeout(30)
def test_stop_kills_what_outlives_the_grace_and_returns_it_unfinished() -> None:
    pool = ProcessPool(2, run)
    pool.submit(Job("pid-0", ("sleep_pid", 0.3)))  # written together: one to each child
    pool.submit(Job("pid-1", ("sleep_pid", 0.3)))
    pool.start()
    pids: list[int] = []
    try:
        pids = [o.value for o in _collect(pool, 2).values()]
        assert len(set(pids)) == 2
        pool.submit(Job("s1", ("sleep", 30)))
        pool.submit(Job("s2", ("sleep", 30)))
        pool.submit(Job("quick", ("value", 1)))  # queued behind a sleeper
        assert _until(lambda: pool.running() == 2, 10)
        start = time.monotonic()
        unfinished = pool.stop(0.5)
        assert 0.5 <= time.monotonic() - start < 10
        assert sorted(job.task_id for job in unfinished) == ["quick", "s1", "s2"]
        assert pool.get_outcomes(0.05) == []
        assert pool.in_flight() == 0
        assert not [pid for pid in pids if _alive(pid)]
        assert pool.stop(1) == []  # idempotent
        pool.kill()
    finally:
        pool.kill()
        _reap_pids(pids)


@pytest.mark.timeout(30)
def test_stop_lets_jobs_finish_within_the_grace_and_keeps_their_outcomes() -> None:
    pool = ProcessPool(2, run)
    pool.start()
    try:
        pool.submit(Job("short", ("sleep", 0.3)))
        assert _until(lambda: pool.running() == 1, 10)
        start = time.monotonic()
        assert pool.stop(10) == []
        assert time.monotonic() - start < 5
        outcomes = pool.get_outcomes(1)
        assert [(o.task_id, o.kind) for o in outcomes] == [("short", OutcomeKind.DONE)]
        with pytest.raises(RuntimeError):
            pool.submit(Job("late", ("value", 1)))
    finally:
        pool.kill()


@pytest.mark.timeout(30)
def test_wake_releases_a_blocked_get_outcomes() -> None:
    with _pool(1) as pool:
        got: list[list[Outcome]] = []
        waiter = threading.Thread(target=lambda: got.append(pool.get_outcomes(20)))
        start = time.monotonic()
        waiter.start()
        pool.wake()
        waiter.join(10)
        assert got == [[]]
        assert time.monotonic() - start < 5
        assert pool.get_outcomes(0.05) == []


@pytest.mark.timeout(30)
def test_in_flight_and_running_follow_the_jobs() -> None:
    with _pool(2) as pool:
        assert (pool.in_flight(), pool.running()) == (0, 0)
        pool.submit(Job("a", ("sleep", 0.5)))
        pool.submit(Job("b", ("sleep", 0.5)))
        assert pool.in_flight() == 2
        assert _until(lambda: pool.running() == 2, 10)
        _collect(pool, 2)
        assert (pool.in_flight(), pool.running()) == (0, 0)


@pytest.mark.timeout(30)
def test_initializer_runs_in_each_child() -> None:
    with _pool(2, initializer=_mark_initialized) as pool:
        for i in range(4):
            pool.submit(Job(f"t{i}", ("env", "TASKQ_POOL_TEST_INIT")))
        assert {o.value for o in _collect(pool, 4).values()} == {"yes"}


def _mark_initialized() -> None:
    os.environ["TASKQ_POOL_TEST_INIT"] = "yes"


@pytest.mark.timeout(90)
def test_replacing_children_many_times_leaks_no_fds() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    with _pool(2, max_tasks_per_child=1) as pool:
        for i in range(200):
            pool.submit(Job(f"t{i}", ("value", i)))
        assert len(_collect(pool, 200, within=80)) == 200
        # Live and retiring children hold a few fds each; 200 leaked would be hundreds.
        assert fds() <= before + 40
    assert fds() == before


@pytest.mark.timeout(60)
def test_children_die_with_their_owner_even_when_it_is_sigkilled() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    owner = subprocess.Popen(
        [sys.executable, str(TESTS / "pool_runners.py")],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    pids: list[int] = []
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()  # the owner prints once its pool is up (or dies)
        pids = [int(word) for word in line.split()]
        assert len(pids) >= 2, line
        assert all(_alive(pid) for pid in pids)
        owner.kill()
        owner.wait(10)
        assert _until(lambda: not any(_alive(pid) for pid in pids), 10), [
            pid for pid in pids if _alive(pid)
        ]
    finally:
        owner.kill()
        owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()
        _reap_pids(pids)


_KINDS = st.sampled_from(["value", "raise", "exit", "kill"])


@pytest.mark.timeout(120)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(kinds=st.lists(_KINDS, min_size=1, max_size=40), procs=st.integers(1, 3))
def test_every_job_ends_exactly_once_whatever_happens_around_it(
    kinds: list[str], procs: int
) -> None:
    payloads = {
        "value": lambda i: ("value", i),
        "raise": lambda i: ("raise", str(i)),
        "exit": lambda i: ("exit", 5),
        "kill": lambda i: ("kill",),
    }
    with _pool(procs) as pool:
        for i, kind in enumerate(kinds):
            pool.submit(Job(str(i), payloads[kind](i)))
        seen = _collect(pool, len(kinds), within=60)
        for i, kind in enumerate(kinds):
            outcome = seen[str(i)]
            if kind == "value":
                assert (outcome.kind, outcome.value) == (OutcomeKind.DONE, i)
            else:
                _crash(outcome, {"raise": "ValueError", "exit": "code 5", "kill": "SIGKILL"}[kind])
        assert pool.in_flight() == 0
