"""Bad input gets a clear error and loses nothing else."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

import taskq

pytestmark = pytest.mark.timeout(120)


def test_unpicklable_argument_raises_at_submit(running: Cluster) -> None:
    with running.client() as client:
        with pytest.raises(taskq.SerializationError, match=r"argument 1 \(lock\)"):
            client.submit(tasks_mod.echo, 1, threading.Lock())
        with pytest.raises(taskq.SerializationError, match="keyword argument 'x'"):
            client.submit(tasks_mod.echo, x=threading.Lock())
        assert client.submit(tasks_mod.add, 1, 1).result(30) == 2
    status = running.status()
    assert status["done"] == 1 and status["failed"] == 0


def test_function_the_worker_cannot_import(running: Cluster, tmp_path: Path) -> None:
    here = tmp_path / "client_only"
    here.mkdir()
    (here / "only_here.py").write_text("def double(x):\n    return 2 * x\n")
    sys.path.insert(0, str(here))
    try:
        import only_here  # type: ignore[import-not-found]

        with running.client() as client:
            with pytest.raises(taskq.TaskLoadError, match="only_here") as info:
                client.submit(only_here.double, 2).result(30)
            assert socket.gethostname() in str(info.value)
            assert client.submit(tasks_mod.add, 2, 3).result(30) == 5
    finally:
        sys.path.remove(str(here))
        sys.modules.pop("only_here", None)


def test_result_that_cannot_be_pickled(running: Cluster) -> None:
    with running.client() as client:
        with pytest.raises(taskq.SerializationError, match=r"result .* could not be pickled"):
            client.submit(tasks_mod.return_lock).result(30)
        assert client.submit(tasks_mod.add, 1, 2).result(30) == 3


def test_payload_over_the_limit_is_refused(cluster: Cluster) -> None:
    cluster.start_master("--max-payload", "0.01")
    cluster.start_worker()
    with cluster.client() as client:
        with pytest.raises(taskq.PayloadTooLarge, match="max-payload of 10485 bytes"):
            client.submit(len, b"x" * 100_000)
        assert client.submit(len, b"x" * 1000).result(30) == 1000


def test_garbage_and_silent_peers_do_not_disturb_the_master(running: Cluster) -> None:
    host, port = running.address.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    garbage = socket.create_connection((host, int(port)))
    try:
        garbage.sendall(os.urandom(4096))
        with running.client() as client:
            assert client.submit(tasks_mod.add, 3, 4).result(30) == 7
        log = running.procs[0]

        def dropped() -> int:
            text = log.stderr()
            return text.count("connection_dropped") + text.count("connection_rejected")

        wait_for(lambda: dropped() >= 2, 30, "both bad peers to be dropped")
        silent.settimeout(10)
        assert silent.recv(1024, socket.MSG_PEEK) is not None
    finally:
        silent.close()
        garbage.close()
    assert running.authkey not in running.procs[0].stderr()


def test_worker_with_wrong_key_or_no_master(cluster: Cluster) -> None:
    cluster.start_master()
    env = {**cluster.env, "TASKQ_AUTHKEY": "wrong"}
    out = cluster.cli("worker", "--connect", cluster.address, "--procs", "1", env=env)
    assert out.returncode == 1
    assert "authkey rejected" in out.stderr and "Traceback" not in out.stderr
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    out = cluster.cli("worker", "--connect", f"127.0.0.1:{port}", "--connect-timeout", "1")
    assert out.returncode == 1
    assert "could not connect" in out.stderr and "Traceback" not in out.stderr
    # a worker that must wait says so once, and for how long
    out = cluster.cli("worker", "--connect", f"127.0.0.1:{port}", "--connect-timeout", "3")
    assert out.returncode == 1
    waiting = [ln for ln in out.stderr.splitlines() if "waiting_for_master" in ln]
    assert len(waiting) == 1 and '"for_s": 2' in waiting[0], out.stderr


@pytest.mark.parametrize("args,needle", [
    (["master", "--port", "notaport"], "--port"),
    (["master", "--port", "70000"], "65535"),
    (["worker"], "--connect"),
    (["worker", "--connect", "host:port"], "HOST:PORT"),
    (["submit", "tasks_mod:add", "--retries", "-1"], "--retries"),
    (["master", "--state", "x.db", "--in-memory"], "exclude"),
    (["nonsense"], "nonsense"),
])
def test_bad_cli_flags_are_usage_errors(cluster: Cluster, args: list[str], needle: str) -> None:
    out = cluster.cli(*args, env={**cluster.env, "TASKQ_ADDRESS": "127.0.0.1:1"})
    assert out.returncode == 2, (out.stdout, out.stderr)
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and needle in line


def test_missing_authkey_is_a_clear_error(cluster: Cluster) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "TASKQ_AUTHKEY"}
    out = cluster.cli("status", "--address", "127.0.0.1:1", env=env)
    assert out.returncode == 1 and "TASKQ_AUTHKEY" in out.stderr
    assert "Traceback" not in out.stderr


def test_master_generates_a_private_key_file(cluster: Cluster) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "TASKQ_AUTHKEY"}
    master = cluster.spawn(["master", "--host", "127.0.0.1", "--port", "0", "--in-memory"],
                           env=env, stdout=-1)
    from cluster import wait_ready

    assert master.popen.stdout is not None
    address = wait_ready(master)
    key_file = Path(env["TASKQ_STATE_DIR"]) / "authkey"
    assert key_file.stat().st_mode & 0o077 == 0
    key = key_file.read_text().strip()
    assert len(key) >= 32 and key not in master.stderr()
    out = cluster.cli("status", "--json", "--authkey-file", str(key_file),
                      env={**env, "TASKQ_ADDRESS": address})
    assert out.returncode == 0, out.stderr


def test_failed_master_calls_are_one_line(cluster: Cluster) -> None:
    cluster.start_master()
    env = {**cluster.env, "TASKQ_AUTHKEY": "wrong", "TASKQ_ADDRESS": cluster.address}
    for args in (["status"], ["submit", "tasks_mod:add", "1"], ["results", "j", "--wait"]):
        out = cluster.cli(*args, env=env)
        assert out.returncode == 1, (args, out.stderr)
        (line,) = out.stderr.splitlines()
        assert line.startswith("taskq: error: authkey rejected by the master"), line
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    out = cluster.cli("status", "--address", f"127.0.0.1:{port}")
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: could not connect to the master"), line


def test_failed_journal_write_on_submit_is_one_line(cluster: Cluster) -> None:
    # The master may write no file over a few hundred KiB (room for a new journal's WAL,
    # about 210 KiB): its journal soon fails to grow.
    limit = ("sh", "-c", 'ulimit -f 600 && exec "$@"', "sh")
    master = cluster.spawn(["master", "--host", "127.0.0.1", "--port", "0", "--state",
                            str(cluster.tmp / "journal.db")], stdout=-1, prefix=limit)
    from cluster import wait_ready

    cluster.address = wait_ready(master)
    big = "x" * 60_000
    for _ in range(20):
        out = cluster.cli("submit", "tasks_mod:echo", big, "--job", "full")
        if out.returncode != 0:
            break
    assert out.returncode == 1, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and "journal could not be written" in line, line
