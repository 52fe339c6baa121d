"""A real master serving its web page, for the dashboard, metrics and history tests; the
headless Chromium the page is looked at with; and the stamp that ties the docs' screenshot
(docs/dashboard.png) to the page sources it was taken from."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import urllib.request
import zlib
from typing import Any

from cluster import ROOT, Cluster, Proc

from taskq.client.local import READY_PREFIX

DASHBOARD = "taskq master dashboard on "
# the distribution's Chromium (never a downloaded one), run headless in a fresh profile
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


# ---------------------------------------------------------------- the docs' screenshot

WEB = ROOT / "taskq" / "master" / "web"
DOCS_SHOT = ROOT / "docs" / "dashboard.png"
SHOT_KEY = b"taskq-page-sources"
WRITE_SHOT_ENV = "TASKQ_WRITE_DOCS_SCREENSHOT"  # set to 1: the run rewrites DOCS_SHOT
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def page_sources_digest() -> str:
    """What the dashboard is drawn from (its template, renderer, script and style)."""
    h = hashlib.sha256()
    for path in sorted(p for p in WEB.iterdir() if p.suffix in (".py", ".html", ".css", ".js")):
        h.update(path.name.encode() + b"\0" + path.read_bytes().replace(b"\r\n", b"\n"))
    return h.hexdigest()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def png_stamp(data: bytes) -> str | None:
    """The page-sources digest a screenshot was stamped with, if any."""
    for kind, body in png_chunks(data):
        key, _, text = body.partition(b"\0")
        if kind == b"tEXt" and key == SHOT_KEY:
            return text.decode()
    return None


def stamp_png(data: bytes, digest: str) -> bytes:
    """The PNG with a tEXt chunk naming the page-sources digest, right after its header."""
    body = SHOT_KEY + b"\0" + digest.encode()
    chunk = (struct.pack(">I", len(body)) + b"tEXt" + body
             + struct.pack(">I", zlib.crc32(b"tEXt" + body)))
    header_end = 8 + 12 + 13  # the signature, then IHDR (13 bytes of data)
    return data[:header_end] + chunk + data[header_end:]

