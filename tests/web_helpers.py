"""A real master serving its web page, for the dashboard, metrics and history tests."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from typing import Any

from cluster import Cluster, Proc

from taskq.client.local import READY_PREFIX

DASHBOARD = "taskq master dashboard on "


def start_web_master(cluster: Cluster, *extra: str, http: str = "127.0.0.1:0",
                     env: dict[str, str] | None = None) -> tuple[Proc, str]:
    """Start a master with its web server; returns it and the page's URL."""
    args = ["master", "--host", "127.0.0.1", "--port", "0", "--lost-after", "2",
            "--http", http, *extra]
    if "--state" not in extra:
        args.append("--in-memory")
    proc = cluster.spawn(args, stdout=subprocess.PIPE, env=env)
    assert proc.popen.stdout is not None
    url = address = ""
    while not url:  # bounded by the test's timeout; EOF if the master exits
        line = proc.popen.stdout.readline()
        assert line, f"master did not start: {proc.stderr()[-2000:]}"
        if line.startswith(DASHBOARD):
            url = line[len(DASHBOARD):].strip()
        elif line.startswith(READY_PREFIX):
            address = line[len(READY_PREFIX):].strip()
    assert address, "no listening line before the dashboard line"
    cluster.address = address
    return proc, url


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    status, body = get(url, headers)
    assert status == 200, (status, body[:300])
    return json.loads(body)
