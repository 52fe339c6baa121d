"""Where the dashboard is, said on the master's stdout: a free port of its own with
`--port 0`, or that it is off and why."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator

import pytest
from cluster import Cluster, Proc
from web_helpers import get

pytestmark = pytest.mark.timeout(120)

DASHBOARD = "taskq master dashboard "


def dashboard_line(proc: Proc) -> str:
    """The master's line about its dashboard, without its prefix (readline is bounded by
    the test's timeout, and ends at EOF if the master exits)."""
    assert proc.popen.stdout is not None
    while line := proc.popen.stdout.readline():
        if line.startswith(DASHBOARD):
            return line[len(DASHBOARD):].strip()
    raise AssertionError(f"no dashboard line: {proc.stderr()[-2000:]}")


def start(cluster: Cluster, *args: str) -> Proc:
    return cluster.spawn(["master", "--host", "127.0.0.1", "--in-memory", *args],
                         stdout=subprocess.PIPE)


@contextlib.contextmanager
def listening(host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """A port held by a listening socket of the test's own (port 0: a free one)."""
    with socket.socket() as sock:
        sock.bind((host, port))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_masters_on_port_0_each_serve_a_dashboard_of_their_own(cluster: Cluster) -> None:
    urls = [dashboard_line(start(cluster, "--port", "0")) for _ in range(2)]
    assert all(url.startswith("on http://127.0.0.1:") for url in urls), urls
    assert len(set(urls)) == 2 and not any(":8265/" in url for url in urls), urls
    for url in urls:
        status, _ = get(url.removeprefix("on "))
        assert status == 200


def test_a_busy_default_dashboard_port_is_said_with_the_way_out(cluster: Cluster) -> None:
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # else something else holds it: busy as well
            stack.enter_context(listening(port=8265))
        line = dashboard_line(start(cluster, "--port", str(free_port())))
    assert line.startswith("off: 127.0.0.1:8265: "), line
    assert "--http HOST:PORT" in line and "--http off" in line, line


def test_http_off_is_said(cluster: Cluster) -> None:
    assert dashboard_line(start(cluster, "--port", "0", "--http", "off")) == "off: --http off"
