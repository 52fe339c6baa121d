"""A dead link is dropped for every thread at once: severing a proxy wakes a long-poll that
another thread has parked on the master (a worker's ``take``, a client's ``fetch``)."""

from __future__ import annotations

import threading

import pytest
from cluster import Cluster

from taskq import defaults
from taskq.net import link
from taskq.net.connection import parse_address
from taskq.net.managers import LINK_ERRORS

pytestmark = pytest.mark.timeout(120)


def test_sever_wakes_a_call_parked_in_another_thread(cluster: Cluster) -> None:
    cluster.start_master()
    proxy = link.open_proxy(parse_address(cluster.address), cluster.authkey.encode())
    outbox = "o-" + "0" * 32
    parked = threading.Event()
    ended: list[BaseException | None] = []

    def poll() -> None:
        parked.set()
        try:
            proxy.call("fetch", outbox, [], 10, 60.0)  # parks for up to a minute
        except LINK_ERRORS as exc:
            ended.append(exc)
        else:
            ended.append(None)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    assert parked.wait(30)
    while thread.is_alive() and not ended:  # give the request time to be on the wire
        thread.join(0.5)
        proxy.sever()
    thread.join(defaults.CALL_TIMEOUT_S)
    assert not thread.is_alive(), "the parked call outlived its severed connection"
    assert ended and isinstance(ended[0], LINK_ERRORS)
    proxy.discard()

