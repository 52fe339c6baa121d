"""A Python client that cannot reach its master, or is refused by it, says so at once in
one line, in the words of a Python user (``authkey=``, TASKQ_AUTHKEY), and waits for a
master that is not up yet only when asked to (``connect_for``)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from cluster import Cluster

import taskq
from taskq import defaults
from taskq.errors import KeyRejected
from taskq.net.keys import AuthkeyMissing

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_client_on_a_refused_port_fails_at_once() -> None:
    port = closed_port()
    began = time.monotonic()
    with pytest.raises(taskq.ConnectError) as info:
        taskq.Client(f"127.0.0.1:{port}", authkey="a-key-of-no-master")
    # not after retries: it used to wait 2 * CONNECT_TIMEOUT_S before it said so
    assert time.monotonic() - began < defaults.CONNECT_TIMEOUT_S
    (line,) = str(info.value).splitlines()
    assert line == (f"could not connect to the master at 127.0.0.1:{port}: nothing listens "
                    f"on that port; is `taskq master` running there, on that port?")


def test_a_client_asked_to_wait_for_the_master_connects_once_it_is_up(
        cluster: Cluster) -> None:
    port = closed_port()
    got: list[object] = []

    def connect() -> None:
        try:
            with taskq.Client(f"127.0.0.1:{port}", authkey=cluster.authkey,
                              connect_for=45) as client:
                got.append(client.info)
        except BaseException as exc:
            got.append(exc)

    waiting = threading.Thread(target=connect, daemon=True)
    waiting.start()
    cluster.start_master(port=port)
    waiting.join(timeout=50)
    assert not waiting.is_alive()
    assert len(got) == 1 and not isinstance(got[0], BaseException), got


def test_a_wrong_key_names_what_a_python_user_sets(cluster: Cluster) -> None:
    cluster.start_master()
    with pytest.raises(KeyRejected) as info:
        taskq.Client(cluster.address, authkey="not-the-masters-key")
    (line,) = str(info.value).splitlines()
    assert line == (f"authkey rejected by the master at {cluster.address}; check the "
                    f"authkey argument of Client, or TASKQ_AUTHKEY: it must be the master's "
                    f"key")


def test_a_missing_key_names_what_a_python_user_sets(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.start_master()
    monkeypatch.delenv("TASKQ_AUTHKEY", raising=False)
    with pytest.raises(AuthkeyMissing) as info:
        taskq.Client(cluster.address)
    message = str(info.value)
    assert "Client(authkey=...)" in message and "TASKQ_AUTHKEY" in message
    assert "--authkey-file" not in message
