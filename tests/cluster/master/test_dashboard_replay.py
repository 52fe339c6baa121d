"""The dashboard's replay action, on a real master's web server: with no token the page shows
the `taskq replay` command and the server refuses the write; with a token the page has a
Replay button whose POST needs the token (and, from a browser, this server's origin)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest
import replay_tasks
from cluster import Cluster
from web_helpers import get, start_web_master

pytestmark = pytest.mark.timeout(120)
TOKEN = "replay-" + "z" * 24


def post(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST with no redirect followed: status, headers, body."""
    where = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        conn.request("POST", path, body=b"", headers=headers)
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def failed_task(cluster: Cluster, flag: Path) -> str:
    with cluster.client() as client:
        future = client.submit(replay_tasks.needs_flag, str(flag), 4)
        with pytest.raises(FileNotFoundError):
            future.result(60)
        return future.task_id


def replay_path(task_id: str) -> str:
    return f"/api/tasks/{urllib.parse.quote(task_id, safe='')}/replay"


def test_without_a_token_the_page_shows_the_command_and_refuses(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    _, url = start_web_master(cluster)
    cluster.start_worker()
    task_id = failed_task(cluster, tmp_path / "flag")

    status, page = get(url)
    assert status == 200
    assert f"<code>taskq replay {task_id}</code>".encode() in page
    assert b'class="replay"' not in page
    status, _, body = post(url, replay_path(task_id), {})
    assert status == 403 and f"taskq replay {task_id}" in json.loads(body)["error"]
    [row] = [json.loads(line) for line in cluster.cli("failed", "--json").stdout.splitlines()]
    assert row["replayed_as"] == []  # nothing changed


def test_with_a_token_the_replay_button_runs_the_task_again(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    _, url = start_web_master(cluster, "--http-token-file", str(token_file))
    cluster.start_worker()
    flag = tmp_path / "flag"
    task_id = failed_task(cluster, flag)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, page = get(url, auth)
    assert status == 200 and f'action="{replay_path(task_id)}"'.encode() in page
    flag.touch()

    assert post(url, replay_path(task_id), {})[0] == 401
    assert post(url, replay_path(task_id), {**auth, "Origin": "http://evil.example"})[0] == 403
    host = urllib.parse.urlsplit(url).netloc
    status, headers, _ = post(url, replay_path(task_id), {**auth, "Origin": f"http://{host}"})
    assert status == 303 and headers["Location"].startswith("/#task/job%3Areplayed-")
    status, _, body = post(url, replay_path(task_id), {**auth, "Accept": "application/json"})
    assert status == 200
    second = json.loads(body)["replayed_as"]
    status, _, body = post(url, replay_path("nope"), {**auth, "Accept": "application/json"})
    assert status == 409 and "no failed task nope" in json.loads(body)["error"]

    results = cluster.cli("results", "replayed", "--wait", "--json")
    assert results.returncode == 0, results.stderr
    rows = [json.loads(line) for line in results.stdout.splitlines()]
    assert [r["value"] for r in rows] == [8, 8] and second in {r["task_id"] for r in rows}
    status, page = get(url, auth)
    assert b"replayed as</span> <a" in page
