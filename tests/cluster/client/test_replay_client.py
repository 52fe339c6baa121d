"""``Client.replay`` against a real master and worker: a task that failed for good runs
again as a new task whose future the client gets; any client may replay any failed task;
what cannot be replayed raises ``ReplayError`` with the reason, and the client goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import replay_tasks
import tasks_mod
from cluster import Cluster

import taskq

pytestmark = pytest.mark.timeout(120)


def test_a_failed_task_is_replayed_as_a_new_future(running: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with running.client() as client:
        future = client.submit(taskq.task(replay_tasks.needs_flag, retries=1), str(flag), 21)
        with pytest.raises(FileNotFoundError):
            future.result(60)
        flag.touch()

        again = client.replay(future.task_id)

        assert again.task_id != future.task_id
        assert again.task_id.startswith(client.public_outbox + "-")
        assert again.result(60) == 42
        task = client._remote.inspect(future.task_id)
        assert task is not None and task["replayed_as"] == [again.task_id]
        assert [a["outcome"] for a in task["attempts"]] == ["raised", "raised"]  # 1 retry
        replay = client._remote.inspect(again.task_id)
        assert replay is not None and replay["replay_of"] == future.task_id
        assert client.submit(tasks_mod.add, 1, 2).result(30) == 3


def test_another_client_replays_a_task_it_did_not_submit(running: Cluster,
                                                         tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with running.client() as first:
        failed = first.submit(replay_tasks.needs_flag, str(flag), 5)
        with pytest.raises(FileNotFoundError):
            failed.result(60)
    flag.touch()
    with running.client() as second:
        assert second.replay(failed.task_id).result(60) == 10
        assert second.replay(failed.task_id).result(60) == 10  # as often as asked


def test_what_cannot_be_replayed_raises_replay_error(running: Cluster) -> None:
    with running.client() as client:
        done = client.submit(tasks_mod.add, 1, 1)
        assert done.result(30) == 2
        with pytest.raises(taskq.ReplayError, match="no failed task nope on the master"):
            client.replay("nope")
        with pytest.raises(taskq.ReplayError, match=f"task {done.task_id} succeeded"):
            client.replay(done.task_id)
        slow = client.submit(tasks_mod.sleep_then, 30)
        client.flush(30)  # the master has it
        with pytest.raises(taskq.ReplayError, match="has not failed"):
            client.replay(slow.task_id)
        assert client.cancel(slow)
        assert client.submit(tasks_mod.add, 2, 2).result(30) == 4



def test_an_async_client_replays_too(running: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "flag"

    async def main() -> int:
        async with taskq.AsyncClient(running.address, running.authkey) as client:
            failed = await client.submit(replay_tasks.needs_flag, str(flag), 3)
            with pytest.raises(FileNotFoundError):
                await failed
            flag.touch()
            [row] = client.client._remote.dead_letters()  # as `taskq failed` lists it
            again = await client.replay(row["task_id"])
            with pytest.raises(taskq.ReplayError):
                await client.replay("nope")
            return int(await again)

    assert asyncio.run(main()) == 6
