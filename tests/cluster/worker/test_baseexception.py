"""SystemExit and KeyboardInterrupt raised by a task, or while its result (or exception) is
pickled, reach ``future.result()`` as themselves, as with ``ProcessPoolExecutor``, and the
pool process that ran the task lives on. ``SerializationError`` is a
``pickle.PicklingError``, as code written for the standard pools expects."""

from __future__ import annotations

import pickle
import threading

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq
from taskq.errors import RemoteTraceback

pytestmark = pytest.mark.timeout(120)


def _pool_pids(client: taskq.Client) -> set[int]:
    """The pids of both workers' pool processes (each worker runs one)."""
    pids: set[int] = set()

    def more() -> bool:
        pids.update(f.result(30) for f in [client.submit(tasks_mod.pid) for _ in range(20)])
        return len(pids) >= 2

    wait_for(more, 60, "tasks on both pool processes", every=0)
    return pids


def test_a_task_raising_systemexit_or_keyboardinterrupt_raises_it_in_result(
        running: Cluster) -> None:
    with running.client() as client:
        before = _pool_pids(client)
        with pytest.raises(SystemExit) as exited:
            client.submit(tasks_mod.raise_system_exit, 3).result(30)
        assert exited.value.code == 3
        assert isinstance(exited.value.__cause__, RemoteTraceback)
        with pytest.raises(KeyboardInterrupt, match="interrupted in the task"):
            client.submit(tasks_mod.raise_keyboard_interrupt).result(30)
        assert _pool_pids(client) == before


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_a_result_whose_pickling_raises_it_raises_that_in_result(
        running: Cluster, exc_type: type[BaseException]) -> None:
    with running.client() as client:
        before = _pool_pids(client)
        future = client.submit(tasks_mod.return_exits_when_pickled, exc_type)
        with pytest.raises(exc_type, match="pickling the result stopped"):
            future.result(30)
        assert not isinstance(future.exception(), taskq.TaskCrashed)
        assert client.submit(tasks_mod.add, 1, 2).result(30) == 3
        assert _pool_pids(client) == before


def test_an_exception_whose_pickling_raises_systemexit_raises_that(running: Cluster) -> None:
    with running.client() as client:
        before = _pool_pids(client)
        with pytest.raises(SystemExit, match="pickling the exception stopped"):
            client.submit(tasks_mod.raise_error_that_exits_when_pickled).result(30)
        assert _pool_pids(client) == before


def test_many_systemexits_at_once_each_resolve_their_own_future(running: Cluster) -> None:
    with running.client() as client:
        futures = [client.submit(tasks_mod.raise_system_exit, i) for i in range(40)]
        codes = [f.exception(60) for f in futures]
        assert [type(c) for c in codes] == [SystemExit] * 40
        assert [c.code for c in codes if isinstance(c, SystemExit)] == list(range(40))
        assert threading.active_count() > 1  # the client's own threads are still there
        assert client.submit(tasks_mod.add, 2, 2).result(30) == 4


def test_serialization_error_is_a_pickling_error(running: Cluster) -> None:
    assert issubclass(taskq.SerializationError, pickle.PicklingError)
    assert issubclass(taskq.TaskLoadError, pickle.PicklingError)
    with running.client() as client:
        with pytest.raises(pickle.PicklingError):
            client.submit(tasks_mod.echo, threading.Lock())
        with pytest.raises(pickle.PicklingError, match="could not be pickled"):
            client.submit(tasks_mod.return_lock).result(30)
