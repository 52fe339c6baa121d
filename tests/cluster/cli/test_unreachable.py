"""A master that is not there, not a master, or refuses the key: one line that names the
address and what to check, at once when nothing listens."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from cluster import Cluster

import taskq

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def listening(reply: bytes | None) -> Iterator[int]:
    """A port that accepts connections and says nothing (reply None: not even accepted by
    the program, only by the kernel), or sends ``reply`` and closes."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        thread = None
        if reply is not None:
            def answer() -> None:
                with contextlib.suppress(OSError), server.accept()[0] as conn:
                    conn.sendall(reply)

            thread = threading.Thread(target=answer, daemon=True)
            thread.start()
        yield server.getsockname()[1]
        if thread is not None:
            thread.join(30)


def one_error_line(cluster: Cluster, address: str, timeout: float) -> str:
    out = cluster.cli("status", "--address", address, timeout=timeout)
    assert out.returncode == 1, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("taskq: error: ") and "Errno" not in line, line
    return line


def test_a_port_nothing_listens_on_fails_at_once(cluster: Cluster) -> None:
    port = free_port()
    # (it used to retry for over 5 s; a hang guard, not a measurement)
    line = one_error_line(cluster, f"127.0.0.1:{port}", timeout=4)
    assert f"could not connect to the master at 127.0.0.1:{port}: nothing listens" in line


@pytest.mark.parametrize("reply,says", [(None, "said nothing"),
                                        (b"HTTP/1.0 200 OK\r\n\r\nhello", "another protocol")])
def test_a_port_that_is_no_master(cluster: Cluster, reply: bytes | None, says: str) -> None:
    with listening(reply) as port:
        line = one_error_line(cluster, f"127.0.0.1:{port}", timeout=30)
    assert f"no taskq master answered at 127.0.0.1:{port}" in line and says in line


def test_a_wait_is_told_in_whole_seconds(cluster: Cluster) -> None:
    port = free_port()
    out = cluster.cli("worker", "--connect", f"127.0.0.1:{port}", "--connect-timeout", "1",
                      timeout=30)
    assert out.returncode == 1
    assert "nothing listens on that port (tried for 1 s)" in out.stderr, out.stderr


def test_a_wrong_key_is_told_in_the_words_of_each_user(cluster: Cluster) -> None:
    cluster.start_master()
    with pytest.raises(taskq.AuthError) as info:
        taskq.Client(cluster.address, "not-the-key")
    said = str(info.value)
    assert said.startswith(f"authkey rejected by the master at {cluster.address}; ")
    assert "authkey argument of Client" in said and "TASKQ_AUTHKEY" in said
    assert "--authkey-file" not in said
    env = {**cluster.env, "TASKQ_AUTHKEY": "not-the-key", "TASKQ_ADDRESS": cluster.address}
    out = cluster.cli("status", env=env)
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert "authkey rejected" in line and "--authkey-file" in line
