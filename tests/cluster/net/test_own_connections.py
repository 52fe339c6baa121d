"""Each thread that calls through a broker proxy has a connection of its own, opened on its
first call and kept for the next; dropping it in one thread leaves the others'. Proxies made
and dropped by many threads at once (a crowd reconnecting in one process) leave no
connection open (``taskq.net.own_connection``)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from cluster import Cluster

from taskq.net import link
from taskq.net.connection import parse_address

pytestmark = pytest.mark.timeout(120)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_each_thread_calls_on_its_own_connection_and_keeps_it(cluster: Cluster) -> None:
    cluster.start_master()
    proxy = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())
    try:
        proxy.call("info")
        mine = proxy._tls.connection
        proxy.call("info")
        assert proxy._tls.connection is mine  # kept for the next call
        got: list[Any] = []
        called, go = threading.Event(), threading.Event()

        def other() -> None:
            proxy.call("info")
            got.append(proxy._tls.connection)
            called.set()
            go.wait(60)
            proxy.discard()  # that thread's connection, not this one's

        thread = threading.Thread(target=other)
        thread.start()
        assert called.wait(60)
        [theirs] = got
        assert theirs is not mine and not theirs.closed
        assert proxy._open == [mine, theirs]
        go.set()
        thread.join(60)
        assert not thread.is_alive()
        assert theirs.closed and proxy._open == [mine] and not mine.closed
        assert proxy._tls.connection is mine
    finally:
        proxy.discard()
    assert mine.closed and proxy._open == []
    with pytest.raises(AttributeError):
        proxy._tls.connection  # noqa: B018 -- gone for this thread too


def test_proxies_made_and_dropped_by_many_threads_leave_nothing_open(cluster: Cluster) -> None:
    cluster.start_master()
    address, key = parse_address(cluster.address), cluster.authkey.encode()
    before = _open_fds()
    failures: list[BaseException] = []
    start = threading.Barrier(40)

    def churn() -> None:
        start.wait(60)
        try:
            for _ in range(5):
                proxy = link.open_proxy(address, key)
                proxy.call("info")
                proxy.discard()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert _open_fds() == before


def test_a_forked_child_opens_its_own_connection(cluster: Cluster) -> None:
    """The parent's connection is never the child's (a reply would go to the wrong one)."""
    cluster.start_master()
    proxy = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())
    try:
        proxy.call("info")
        pid = os.fork()
        if pid == 0:  # the child: exit at once, saying what it saw
            os._exit(0 if getattr(proxy._tls, "connection", None) is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child saw its parent's connection"
        assert not proxy._tls.connection.closed  # the parent's is untouched
    finally:
        proxy.discard()
