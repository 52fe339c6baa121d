"""How the end of a pool process is put in words: its exit code or signal, and "out of
memory" only where the kernel counted an OOM kill in the worker's memory cgroup while the
process ran. The kernel's counter is faked with a file here."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pool_runners import run

from taskq.worker.pools import child_record
from taskq.worker.pools.child_record import exit_detail, memory_events_file, oom_kill_count
from taskq.worker.pools.process import Job, Outcome, OutcomeKind, ProcessPool

SIGKILL = -int(signal.SIGKILL)


@pytest.fixture(scope="module", autouse=True)
def _forkserver() -> None:
    """The forkserver outlives every test (as in test_pool): start it before any runs."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["taskq.worker.pools.process", "pool_runners"])
    multiprocessing.forkserver.ensure_running()


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake memory.events file, used as this process's cgroup counter."""
    events = tmp_path / "memory.events"
    _count(events, 5)
    monkeypatch.setattr(child_record, "_memory_events", lambda: str(events))
    yield events


def _count(events: Path, oom_kills: int) -> None:
    events.write_text(f"low 0\nhigh 0\nmax 3\noom 2\noom_kill {oom_kills}\noom_group_kill 0\n")


def _crashed(pool: ProcessPool, task_id: str, within: float = 20.0) -> Outcome:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for outcome in pool.get_outcomes(1.0):
            if outcome.task_id == task_id:
                assert outcome.kind is OutcomeKind.CRASHED, outcome
                return outcome
    raise AssertionError(f"no outcome for {task_id} within {within:g} s")


# ----------------------------------------------------------------------- with real processes


@pytest.mark.timeout(30)
def test_a_sigkill_with_no_oom_kill_counted_names_the_signal_only(counter: Path) -> None:
    pool = ProcessPool(1, run)
    pool.start()
    try:
        pool.submit(Job("kill", ("kill",)))
        detail = _crashed(pool, "kill").detail
    finally:
        pool.kill()
    assert detail == "process killed by signal SIGKILL"


@pytest.mark.timeout(30)
def test_a_sigkill_while_the_kernel_counted_an_oom_kill_says_out_of_memory(
        counter: Path) -> None:
    pool = ProcessPool(1, run)
    pool.start()  # the child's start is noted with the counter at 5
    try:
        _count(counter, 6)  # the kernel's OOM killer struck in the cgroup meanwhile
        pool.submit(Job("kill", ("kill",)))
        detail = _crashed(pool, "kill").detail
        pool.submit(Job("again", ("kill",)))  # its replacement started after that kill
        again = _crashed(pool, "again").detail
    finally:
        pool.kill()
    assert detail.startswith("process killed by signal SIGKILL (out of memory")
    assert again == "process killed by signal SIGKILL"


# --------------------------------------------------------------------------- exit_detail


def test_exit_codes_and_other_signals_never_speak_of_memory(counter: Path) -> None:
    _count(counter, 9)
    assert exit_detail(3, 5) == "process exited with code 3"
    assert exit_detail(0, 5) == "process exited with code 0"
    assert exit_detail(-int(signal.SIGSEGV), 5) == "process killed by signal SIGSEGV"
    assert exit_detail(None, 5) == "process ended (exit status unknown)"


def test_sigkill_says_out_of_memory_only_when_the_count_went_up(counter: Path) -> None:
    assert exit_detail(SIGKILL, 5) == "process killed by signal SIGKILL"
    _count(counter, 7)
    assert "out of memory" in exit_detail(SIGKILL, 5)
    assert exit_detail(SIGKILL, 7) == "process killed by signal SIGKILL"


def test_sigkill_says_nothing_of_memory_where_the_count_is_unknown(
        counter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _count(counter, 7)
    assert exit_detail(SIGKILL, None) == "process killed by signal SIGKILL"  # at start
    monkeypatch.setattr(child_record, "_memory_events", lambda: None)  # now
    assert exit_detail(SIGKILL, 5) == "process killed by signal SIGKILL"
    counter.write_text("garbage\n")
    monkeypatch.setattr(child_record, "_memory_events", lambda: str(counter))
    assert exit_detail(SIGKILL, 5) == "process killed by signal SIGKILL"


# ------------------------------------------------------------------ finding the counter


def test_the_counter_is_read_from_v2_memory_events_and_v1_oom_control(tmp_path: Path) -> None:
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 0\noom 1\noom_kill 4\noom_group_kill 0\n")
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 11\n")
    assert oom_kill_count(str(v2)) == 4
    assert oom_kill_count(str(v1)) == 11
    assert oom_kill_count(str(tmp_path / "missing")) is None
    (tmp_path / "no_counter").write_text("oom 1\n")
    assert oom_kill_count(str(tmp_path / "no_counter")) is None


def _cgroup(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cgroup"
    path.write_text(text)
    return str(path)


def test_the_counter_file_is_the_one_of_this_process_s_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "fs"
    (root / "work.slice" / "w-1.scope").mkdir(parents=True)
    (root / "work.slice" / "w-1.scope" / "memory.events").write_text("oom_kill 0\n")
    (root / "memory" / "jobs" / "a").mkdir(parents=True)
    (root / "memory" / "jobs" / "a" / "memory.oom_control").write_text("oom_kill 0\n")

    v2 = _cgroup(tmp_path, "0::/work.slice/w-1.scope\n")
    assert memory_events_file(v2, str(root)) == str(
        root / "work.slice" / "w-1.scope" / "memory.events")
    v1 = _cgroup(tmp_path, "9:pids:/x\n4:cpu,memory:/jobs/a\n0::/\n")
    assert memory_events_file(v1, str(root)) == str(
        root / "memory" / "jobs" / "a" / "memory.oom_control")
    # the root cgroup has no counter file: nothing to say
    assert memory_events_file(_cgroup(tmp_path, "0::/\n"), str(root)) is None
    assert memory_events_file(str(tmp_path / "missing"), str(root)) is None
