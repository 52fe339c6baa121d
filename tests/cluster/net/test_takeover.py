"""No peer holding the key can take the master over, nor reach another peer's work.

Against a real master, a hand-crafted malicious peer that holds the key: a request whose
pickle names ``os.system`` (first on a connection, and as an argument later) is refused,
logged and its connection closed, and nothing ran; the standard manager's other calls
(shutdown, debug_info) are not served; a client's results, cancels and task ids are out of
reach of a peer that does not hold its outbox's name, even one that ran its task; a worker
reports only tasks leased to it; and a real client and worker go on as if nothing happened.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import tasks_mod
from cluster import Cluster, Proc, wait_for

from taskq.errors import MasterError
from taskq.master import owned
from taskq.master.broker import Broker
from taskq.master.state import BrokerState
from taskq.net import link, managers
from taskq.net.connection import parse_address
from taskq.protocol import api, calls, frames, names, restricted
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import Beat, ResultMsg, Status, TaskMsg, WorkerHello

pytestmark = pytest.mark.timeout(120)


class Evil:
    """Unpickling this runs a shell command (where it is let through)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def master(cluster: Cluster) -> Iterator[Proc]:
    yield cluster.start_master()


def _proxy(cluster: Cluster) -> managers.BrokerProxy:
    return link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())


def _still_serves(cluster: Cluster) -> None:
    assert _proxy(cluster).remote.status().leased == 0
    with cluster.client() as client:
        future = client.submit(tasks_mod.add, 1, 2)
        assert future.cancel()  # no worker here: it was queued (the cancel reached it)


def test_the_restricted_unpickler_admits_messages_and_refuses_any_other_name() -> None:
    request = ("id", "submit", ([TaskMsg("t", "client-x", b"fn", b"args")], True), {})
    assert restricted.loads(frames.dumps(request)) == request
    with pytest.raises(restricted.Forbidden, match=r"posix\.system"):
        restricted.loads(frames.dumps(("id", "status", (Evil(Path("/nonexistent")),), {})))
    with pytest.raises(restricted.Forbidden, match=r"builtins\.eval"):
        restricted.loads(b"\x80\x05cbuiltins\neval\n\x8c\x041+1\x85R.")


def test_a_first_request_carrying_code_is_refused_and_nothing_runs(
        cluster: Cluster, master: Proc, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    conn = managers.client(parse_address(cluster.address), cluster.authkey.encode())
    conn.send((None, "dummy", (Evil(marker),), {}))
    with pytest.raises(EOFError):
        conn.recv()  # the master closed the connection
    conn.close()
    wait_for(lambda: "request_refused" in master.stderr(), 10, "the refusal in the log")
    line = next(ln for ln in master.stderr().splitlines() if "request_refused" in ln)
    assert "posix.system" in line and cluster.authkey not in master.stderr()
    assert not marker.exists()
    _still_serves(cluster)


def test_an_argument_carrying_code_later_on_is_refused_and_the_link_closed(
        cluster: Cluster, master: Proc, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    proxy = _proxy(cluster)
    assert proxy.remote.status().leased == 0
    with pytest.raises((EOFError, OSError)):
        proxy.call("status", Evil(marker))
    proxy.discard()
    wait_for(lambda: "request_refused" in master.stderr(), 10, "the refusal in the log")
    assert not marker.exists()
    _still_serves(cluster)


@pytest.mark.parametrize("call", ["shutdown", "debug_info", "number_of_objects"])
def test_the_manager_s_own_calls_are_not_served(cluster: Cluster, master: Proc,
                                                call: str) -> None:
    conn = managers.client(parse_address(cluster.address), cluster.authkey.encode())
    conn.send((None, call, (), {}))
    with pytest.raises(EOFError):
        conn.recv()
    conn.close()
    wait_for(lambda: "not served" in master.stderr(), 10, "the dropped connection")
    _still_serves(cluster)


def test_a_peer_without_the_outbox_name_cannot_reach_a_client_s_tasks(
        cluster: Cluster, master: Proc) -> None:
    with cluster.client() as victim:
        future = victim.submit(tasks_mod.add, 2, 3)
        evil = _proxy(cluster).remote
        wait_for(lambda: evil.status().pending, 10, "the victim's task to be queued")
        # the attacker poses as a worker and leases the victim's task: it learns its id
        # and the public name of its outbox, never the name that reaches the outbox
        thief = names.new_worker_claim("evil", 1)
        evil.register(WorkerHello(thief, "evil", 1, 1, ("default",)))
        (msg,) = evil.take(thief, 10, wait=5).tasks
        assert msg.outbox == names.outbox_name(victim.outbox) != victim.outbox
        for name in (msg.outbox, msg.task_id, msg.outbox.removeprefix("client-")):
            assert evil.fetch(name, [], max_n=100, wait=0).results == []
            assert evil.open_count(name) in (None, 0)
            assert evil.cancel([msg.task_id], outbox=name).cancelled == []
        assert evil.cancel([msg.task_id], outbox=names.new_client_claim()).unknown == [msg.task_id]
        with pytest.raises(MasterError, match="does not belong to its outbox"):
            evil.submit([TaskMsg(f"{msg.outbox}-999", names.new_client_claim(), b"", b"")])
        with pytest.raises(MasterError, match="does not belong to its outbox"):
            evil.submit([TaskMsg(f"{msg.outbox}-999", msg.outbox, b"", b"")])
        # another identity, and one posing as a worker seen in status, report a forged
        # result for the task: it is dropped, as not leased to them
        _forge_reports(evil, msg, [names.new_worker_claim("evil", 2),
                                   *(w.worker_id for w in evil.status().workers)])
        assert not future.done()
        wait_for(lambda: "report_refused" in master.stderr(), 10, "the refused report")
        evil.release(thief, [msg.task_id], goodbye=True)  # hands it back: a real worker runs it
        cluster.start_worker()
        assert future.result(timeout=60) == 5


def _forge_reports(evil: BrokerAPI, msg: TaskMsg, identities: list[str]) -> None:
    forged = ResultMsg(msg.task_id, Status.OK, pickle.dumps(666))
    for identity in identities:
        evil.report(identity, [forged], started=[msg.task_id])
        assert evil.status().done == 0


def test_ids_seen_in_status_do_not_act_as_the_worker(cluster: Cluster, master: Proc) -> None:
    cluster.start_worker()
    cluster.wait_workers(1)
    evil = _proxy(cluster).remote
    (row,) = evil.status().workers
    assert evil.heartbeat(row.worker_id, [], 0) == 0.0  # unknown: it must register
    leased = evil.take(row.worker_id, 5, wait=0)
    assert (leased.tasks, leased.asks) == ([], [])
    assert evil.beat(row.worker_id, Beat(held=0, running=0)).beat == 0.0
    with cluster.client() as client:
        assert client.submit(tasks_mod.add, 1, 1).result(timeout=60) == 2


def test_the_state_lets_a_worker_report_only_what_it_was_leased() -> None:
    from taskq.master.state import WorkerInfo

    state = BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20)
    state.submit([TaskMsg(f"box-{i}", "box", b"f", b"a") for i in range(2)], 0)
    for worker in ("w1", "w2"):
        state.register(WorkerInfo(worker, "h", 1, 1), 0)
    (msg,) = state.lease("w1", 1, 0)
    result = ResultMsg(msg.task_id, Status.OK, b"v")
    other = ResultMsg("box-1" if msg.task_id == "box-0" else "box-0", Status.OK, b"v")
    assert state.reportable("w2", [result, other]) == ([], [result, other])
    assert state.reportable("w1", [result, other]) == ([result], [other])
    assert state.reportable("w1", [ResultMsg("ended", Status.OK)])[1] == []  # ignored later
    state.heartbeat("w2", [], 0, 4)  # w1 falls silent: lost, its lease requeued
    state.expire(6)
    assert state.reportable("w1", [result]) == ([result], [])  # a late result still counts
    assert state.owned_by("box", [msg.task_id, "unknown"]) == [msg.task_id, "unknown"]
    assert state.owned_by("another", [msg.task_id]) == []


def _broker() -> Broker:
    return Broker(BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20))


def test_the_owners_layer_serves_the_declared_calls_with_their_claims_turned_public() -> None:
    served = owned.Owned(_broker()).calls
    assert tuple(served) == api.EXPOSED
    claimed = {name for name, call in api.CALLS.items() if call.claims}
    assert {"hello", "submit", "fetch", "open_count", "cancel", "register", "heartbeat",
            "take", "report", "release", "beat", "flush", "replay"} == claimed
    claim = names.new_worker_claim("me", 1)
    served["register"](WorkerHello(claim, "me", 1, 1, ("default",)))
    assert served["heartbeat"](claim, [], 0, 0, None) > 0.0
    assert served["heartbeat"](names.worker_name(claim), [], 0, 0, None) == 0.0
    with pytest.raises(names.NotYours, match="takes 5 arguments"):
        served["take"](claim, 1)


class Extended(api.BrokerAPI, Protocol):
    """The interface with calls added by someone who forgot (or misused) a declaration."""

    def drain(self, outbox: str) -> int: ...

    def ping(self) -> int: ...

    @calls.shared
    def evict(self, worker_id: str) -> int: ...

    @calls.claims(tasks="tasks")
    def resubmit(self, tasks: list[TaskMsg]) -> int: ...

    @calls.claims(outbox="outbox")
    def peek(self, outbox: str, *, n: int = 1) -> str: ...


class ExtendedBroker(Broker):
    def drain(self, outbox: str) -> int:
        return 1

    def ping(self) -> int:
        return 2

    def evict(self, worker_id: str) -> int:
        return 3

    def resubmit(self, tasks: list[TaskMsg]) -> int:
        return 4

    def peek(self, outbox: str, *, n: int = 1) -> str:
        return f"{outbox} {n}"


@pytest.mark.parametrize(("call", "reason"), [
    ("drain", "neither its claims"), ("ping", "neither its claims"),
    ("evict", "worker_id look like claims"), ("resubmit", "no check on the master")])
def test_a_new_call_without_a_sound_declaration_is_refused(call: str, reason: str) -> None:
    served = owned.Owned(ExtendedBroker(BrokerState(lost_after=5, max_lost=3,
                                                    max_payload=1 << 20)), api=Extended)
    with pytest.raises(names.NotYours, match=reason):
        served.calls[call]("x")
    claim = names.new_client_claim()
    assert served.calls["peek"](claim, 3) == f"{names.outbox_name(claim)} 3"
