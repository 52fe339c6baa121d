"""The version handshake: an incompatible peer is refused with one line naming both sides,
on both sides, and the master keeps serving; a compatible but different one is logged once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from multiprocessing import connection

import pytest
import tasks_mod
from cluster import Cluster, Proc, wait_for

from taskq.errors import AuthError, VersionMismatch
from taskq.net import link
from taskq.net.connection import parse_address
from taskq.protocol import bodies, frames, versions
from taskq.protocol.versions import Versions

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def master(cluster: Cluster) -> Iterator[Proc]:
    yield cluster.start_master()


def _hello(cluster: Cluster, data: bytes) -> bytes:
    """A peer with the key that sends ``data`` where its version hello goes."""
    sock = socket.create_connection(parse_address(cluster.address), timeout=10)
    sock.settimeout(None)  # blocking, bounded by the master's own handshake timeout
    conn = connection.Connection(os.dup(sock.fileno()))
    try:
        connection.answer_challenge(conn, cluster.authkey.encode())
        connection.deliver_challenge(conn, cluster.authkey.encode())
        conn.send_bytes(data)
        return conn.recv_bytes()
    finally:
        conn.close()
        sock.close()


def _still_serves(cluster: Cluster) -> None:
    proxy = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())
    assert proxy.remote.status().leased == 0
    proxy.discard()


def test_compatibility_rules() -> None:
    here = versions.local()
    older = Versions(here.protocol - 1, here.python, here.cloudpickle)
    reason = versions.refusal(here, older, "the master", "the peer")
    assert reason is not None and str(here) in reason and str(older) in reason
    assert "install the same taskq release" in reason
    assert versions.refusal(here, Versions(here.protocol, "4.0", "3.0"), "a", "b")
    other_minor = Versions(here.protocol, "3.0", "0.1")
    assert versions.refusal(here, other_minor, "a", "b") is None
    assert len(versions.differences(here, other_minor)) == 2
    assert versions.decode(versions.HELLO, versions.encode(versions.HELLO, here)) == here
    assert versions.decode(versions.HELLO, b"taskq-hello {nope") is None
    assert versions.decode(versions.HELLO, frames.dumps(("id", "dummy", (), {}))) is None


def test_an_older_protocol_is_refused_naming_both_sides(cluster: Cluster, master: Proc) -> None:
    here = versions.local()
    old = Versions(1, here.python, here.cloudpickle)
    answer = _hello(cluster, versions.encode(versions.HELLO, old))
    assert answer.startswith(versions.REFUSED)
    line = answer.decode()
    assert "taskq protocol 1" in line and f"taskq protocol {here.protocol}" in line
    assert "\n" not in line
    wait_for(lambda: "peer_refused" in master.stderr(), 10, "the refusal in the master's log")
    assert "taskq protocol 1" in master.stderr()
    _still_serves(cluster)


def test_a_peer_with_no_hello_is_refused(cluster: Cluster, master: Proc) -> None:
    answer = _hello(cluster, frames.dumps((None, "dummy", (), {})))
    assert answer.startswith(versions.REFUSED) and b"no version hello" in answer
    _still_serves(cluster)


def test_a_master_of_another_protocol_refuses_this_client_with_one_line(
        cluster: Cluster, master: Proc, monkeypatch: pytest.MonkeyPatch) -> None:
    masters = versions.PROTOCOL
    monkeypatch.setattr(versions, "PROTOCOL", 99)
    with pytest.raises(VersionMismatch) as caught:
        link.connect(parse_address(cluster.address), cluster.authkey.encode(), 5)
    text = str(caught.value)
    assert "taskq protocol 99" in text and f"the master runs taskq protocol {masters}" in text
    assert "refused this peer" in text and "\n" not in text
    assert isinstance(caught.value, AuthError)  # not retried, like a wrong key


def test_the_cli_says_a_version_refusal_in_one_line(cluster: Cluster, master: Proc) -> None:
    env = {**cluster.env, "TASKQ_ADDRESS": cluster.address}
    sitecustomize = cluster.tmp / "site"
    sitecustomize.mkdir()
    (sitecustomize / "sitecustomize.py").write_text(
        "import taskq.protocol.versions as h\nh.PROTOCOL = 1\n")
    env["PYTHONPATH"] = f"{sitecustomize}{os.pathsep}{env['PYTHONPATH']}"
    out = cluster.cli("status", env=env)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert "version mismatch" in line and "taskq protocol 1" in line


def test_a_compatible_but_different_peer_is_logged_once(cluster: Cluster,
                                                        master: Proc) -> None:
    here = versions.local()
    other = Versions(here.protocol, here.python, "0.0.1")
    for _ in range(3):
        answer = _hello(cluster, versions.encode(versions.HELLO, other))
        assert versions.decode(versions.OK, answer) == here
    wait_for(lambda: "version_differs" in master.stderr(), 10, "the warning")
    assert master.stderr().count("version_differs") == 1
    assert "cloudpickle 0.0.1" in master.stderr()
    _still_serves(cluster)


def test_a_function_shipped_by_value_loads_only_on_the_same_python_minor() -> None:
    import sys

    from taskq.errors import SerializationError
    from taskq.protocol.messages import Status
    from taskq.worker import execute

    offset = 3

    def by_value(x: int) -> int:  # a closure: its code travels in the task
        return x + offset

    data = bodies.encode_function(by_value)
    assert data.startswith(b"TQBV" + bytes(sys.version_info[:2]))
    assert bodies.decode_function(data)(1) == 4
    assert not bodies.encode_function(tasks_mod.add).startswith(b"TQBV")  # by reference
    other = b"TQBV" + bytes([sys.version_info[0], sys.version_info[1] + 1]) + data[6:]
    with pytest.raises(SerializationError, match="same Python minor version"):
        bodies.decode_function(other)
    ran = execute.run(execute.Payload(fn=other, args=bodies.encode_args((1,), {})))  # pool
    status, body = ran.status, ran.body
    assert status is Status.UNLOADABLE  # a worker on the submitter's Python may load it
    assert "same Python minor version" in ran.detail.splitlines()[0]
    assert f"from Python {sys.version_info[0]}.{sys.version_info[1] + 1}" in str(
        bodies.decode_error(body))
