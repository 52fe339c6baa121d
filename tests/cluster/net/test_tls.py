"""TLS end to end with a real master and workers, certificates made on the fly: TLS and
mutual TLS work for workers, clients and the CLI; a plain-text peer, an unknown CA, a wrong
host name, an expired certificate, a missing client certificate and a TLS peer of a plain
master are each refused with one line on both sides, and the master keeps serving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, Proc, wait_for

import taskq
from bench.certs import CA, Pair
from taskq.net import link, secure
from taskq.net.connection import parse_address

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki")


def _tls_master(cluster: Cluster, server: Pair, *extra: str) -> Proc:
    return cluster.start_master("--tls-cert", str(server.cert), "--tls-key", str(server.key),
                                *extra)


def _refused(cluster: Cluster, settings: taskq.TLS | None, match: str) -> str:
    with pytest.raises(taskq.AuthError) as caught:
        taskq.Client(cluster.address, cluster.authkey, tls=settings, connect_for=10)
    text = str(caught.value)
    assert "\n" not in text and match in text, text
    return text


def _serves_tls(cluster: Cluster, settings: taskq.TLS) -> None:
    """A client reaches the master and a worker runs its task."""
    with cluster.client(tls=settings) as client:
        assert client.submit(tasks_mod.add, 20, 22).result(timeout=30) == 42


def _answers_tls(cluster: Cluster, settings: taskq.TLS) -> None:
    """The master answers a peer with these settings."""
    address = parse_address(cluster.address)
    secure.use_tls(address, settings)
    try:
        proxy = link.open_proxy(address, cluster.authkey.encode())
        assert proxy.remote.status().leased == 0
        proxy.discard()
    finally:
        secure.use_tls(address, None)


def test_tls_end_to_end_with_workers_clients_and_the_cli(cluster: Cluster, ca: CA) -> None:
    master = _tls_master(cluster, ca.issue("master"))
    cluster.start_worker("--tls-ca", str(ca.cert))
    env = {**cluster.env, "TASKQ_TLS_CA": str(ca.cert)}  # a worker configured by env
    cluster.spawn(["worker", "--connect", cluster.address, "--procs", "1"], env=env)
    _serves_tls(cluster, taskq.TLS(ca=ca.cert))
    out = cluster.cli("status", "--json", "--tls-ca", str(ca.cert))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(cluster.cli("status", "--json", env={
        **env, "TASKQ_ADDRESS": cluster.address}).stdout.split('"worker_id"')) == 3, 30,
        "both workers, seen by a CLI configured by env")
    assert "tls='on'" in master.stderr() or '"tls": "on"' in master.stderr()


def test_a_plain_peer_of_a_tls_master_is_told_in_one_line(cluster: Cluster, ca: CA) -> None:
    master = _tls_master(cluster, ca.issue("master"))
    _refused(cluster, None, "requires TLS")
    wait_for(lambda: "spoke no TLS" in master.stderr(), 10, "the master's reason")
    out = cluster.cli("status")
    assert out.returncode == 1 and "requires TLS" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    _answers_tls(cluster, taskq.TLS(ca=ca.cert))


@pytest.mark.parametrize(("case", "match"), [
    ("unknown CA", "certificate verify failed"),
    ("wrong host name", "mismatch, certificate is not valid for"),
    ("expired", "certificate has expired"),
])
def test_a_master_certificate_that_does_not_verify_is_refused(
        cluster: Cluster, ca: CA, tmp_path: Path, case: str, match: str) -> None:
    if case == "unknown CA":
        server = CA(tmp_path / "other", "other CA").issue("master")
    else:
        server = ca.issue("master", hosts=("example.org",)) if case == "wrong host name" \
            else ca.issue("master", expired=True)
    master = _tls_master(cluster, server)
    _refused(cluster, taskq.TLS(ca=ca.cert), match)
    wait_for(lambda: "peer_refused" in master.stderr(), 10, "the master's reason")
    line = next(ln for ln in master.stderr().splitlines() if "peer_refused" in ln)
    assert "TLS handshake failed" in line
    assert master.popen.poll() is None
    if case == "unknown CA":  # a peer that trusts the master's own CA is served
        _answers_tls(cluster, taskq.TLS(ca=tmp_path / "other" / "other-CA.pem"))


def test_mutual_tls_requires_a_client_certificate_signed_by_the_ca(cluster: Cluster,
                                                                   ca: CA, tmp_path: Path) -> None:
    master = _tls_master(cluster, ca.issue("master"), "--tls-ca", str(ca.cert))
    peer = ca.issue("peer")
    env = {**cluster.env, "TASKQ_TLS_CA": str(ca.cert), "TASKQ_TLS_CERT": str(peer.cert),
           "TASKQ_TLS_KEY": str(peer.key)}
    cluster.spawn(["worker", "--connect", cluster.address, "--procs", "1"], env=env)
    _refused(cluster, taskq.TLS(ca=ca.cert), "TLS")  # no certificate of its own
    wait_for(lambda: "peer_refused" in master.stderr(), 10, "the master's reason")
    stranger = CA(tmp_path / "stranger", "stranger CA").issue("peer")
    _refused(cluster, taskq.TLS(ca=ca.cert, cert=stranger.cert, key=stranger.key), "TLS")
    _serves_tls(cluster, taskq.TLS(ca=ca.cert, cert=peer.cert, key=peer.key))


def test_a_tls_peer_of_a_plain_master_is_refused(cluster: Cluster, ca: CA) -> None:
    master = cluster.start_master()
    _refused(cluster, taskq.TLS(ca=ca.cert), "does not speak TLS")
    wait_for(lambda: "a TLS peer?" in master.stderr(), 10, "the master's reason")
    secure.use_tls(parse_address(cluster.address), None)
    proxy = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())
    assert proxy.remote.status().leased == 0
    proxy.discard()
    assert master.popen.poll() is None


def test_tls_settings_are_checked_before_anything_starts(cluster: Cluster, ca: CA) -> None:
    with pytest.raises(ValueError, match="both a certificate and its key"):
        taskq.TLS(ca=ca.cert, cert=ca.cert)
    with pytest.raises(ValueError, match="does not exist"):
        taskq.TLS(ca="/nonexistent/ca.pem")
    out = cluster.cli("master", "--tls-ca", str(ca.cert), "--in-memory", "--port", "0")
    assert out.returncode == 2 and "--tls-cert" in out.stderr
    assert os.environ.get("TASKQ_TLS_CA") is None


# every command that reaches a master, with arguments that make it call the master once
REACHING = [
    ["status", "--json"], ["history", "--json"], ["top", "--once"],
    ["explain", "no-such-task"], ["inspect", "no-such-task"], ["results", "no-such-job"],
    ["cancel", "no-such-task"], ["queue", "list"], ["schedule", "list"], ["primitives"],
    ["primitives", "delete", "no-such-primitive"], ["schedule", "pause", "no-such-schedule"],
]


def test_every_command_that_reaches_a_master_speaks_tls(cluster: Cluster, ca: CA) -> None:
    _tls_master(cluster, ca.issue("master"))
    for argv in REACHING:
        out = cluster.cli(*argv, "--tls-ca", str(ca.cert), timeout=30)
        # it reached the master: exit 0, or 1 with the master's answer about the name
        assert out.returncode in (0, 1), (argv, out.stderr)
        assert "TLS" not in out.stderr and "no such option" not in out.stderr, (argv, out.stderr)
        assert "Traceback" not in out.stderr, (argv, out.stderr)
    plain = cluster.cli("queue", "list", timeout=30)  # without TLS: refused in one line
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1, plain.stderr
