"""The dashboard's HTML, rendered on the server from one ``Broker.monitor()`` snapshot.

    GET / ──► monitor() ──► render(snapshot) ──► index.html with its slots filled:
        summary · tiles · charts (charts.py) · workers · queues · jobs · failed tasks

The first paint is the whole page: with JavaScript off (or before it runs) the tiles,
charts and tables hold the master's numbers. ``app.js`` then fetches ``/`` again every
second and swaps these same parts in, so there is one renderer. Every value is escaped
(``fmt.esc``); no task's arguments or result are in the snapshot.

A tile is one line of ``TILES``: a key, a label and a function of the snapshot.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from taskq.master.web import charts
from taskq.master.web.fmt import DASH, clock, esc, limit, seconds, size

Snapshot = dict[str, Any]
NBSP = "\u00a0"


def live_workers(s: Snapshot) -> int:
    return sum(1 for w in s["workers"] if w["state"] != "lost")


def _pair(s: Snapshot, what: str) -> str:
    """p50 / p99, each kept on one line (a no-break space before its unit)."""
    p = s["percentiles"]
    return " / ".join(seconds(p[f"{what}_{q}"]).replace(" ", NBSP) for q in ("p50", "p99"))


def _kept(s: Snapshot) -> str:
    """How many results are kept for their result_ttl, and their size."""
    kept = s.get("kept") or {"results": 0, "bytes": 0}
    if not kept["results"]:
        return "0"
    return f"{kept['results']}{NBSP}·{NBSP}{size(kept['bytes'])}"


@dataclass(frozen=True, slots=True)
class Tile:
    key: str  # the tile's data-tile attribute, for tests and styles
    label: str
    value: Callable[[Snapshot], object]


TILES = (
    Tile("workers", "workers", live_workers),
    Tile("queued", "queued", lambda s: sum(q["depth"] for q in s["queues"])),
    Tile("running", "running", lambda s: sum(q["running"] for q in s["queues"])),
    Tile("desired", "workers wanted",
         lambda s: max((q.get("desired_workers", 0) for q in s["queues"]), default=0)),
    Tile("done", "done (15 min)", lambda s: s["totals"]["done"]),
    Tile("failed", "failed (15 min)", lambda s: s["totals"]["failed"]),
    Tile("wait", "wait p50 / p99 (15 min)", lambda s: _pair(s, "wait")),
    Tile("run", "run p50 / p99 (15 min)", lambda s: _pair(s, "run")),
    Tile("kept", "results kept by id", lambda s: _kept(s)),
)

WORKER_COLUMNS = ("worker", "host", "pid", "pool", "busy", "done", "failed", "memory",
                  "heartbeat", "state")
QUEUE_COLUMNS = ("queue", "depth", "running", "in /s", "out /s", "submitted", "finished",
                 "desired workers", "rate limit", "concurrency limit", "state")
JOB_COLUMNS = ("job", "progress", "done", "failed", "open", "results waiting")


def tiles(s: Snapshot) -> str:
    return "".join(f'<div class="figure" data-tile="{esc(t.key)}"><b>{esc(t.value(s))}</b>'
                   f'<span class="muted">{esc(t.label)}</span></div>' for t in TILES)


def summary(s: Snapshot) -> str:
    kind = "durable" if s.get("durable") else "in-memory"
    return esc(f"{live_workers(s)} worker(s) · up {round(s.get('uptime', 0))} s · {kind}")


def table(columns: tuple[str, ...], rows: list[tuple[str, list[str]]]) -> str:
    """A table's head and body; each row is (its <tr> attributes, its cells as HTML).
    Every cell carries its column's name (``data-label``), which narrow screens show."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(f"<tr{attrs}>" + "".join(f'<td data-label="{esc(c)}">{cell}</td>'
                                           for c, cell in zip(columns, cells, strict=True))
                   + "</tr>" for attrs, cells in rows)
    return f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"


def workers(s: Snapshot) -> str:
    rows = [("", [esc(w["worker_id"]), esc(w["host"]), esc(w["pid"]), esc(w["procs"]),
                  esc(w["busy"]), esc(w["done"]), esc(w["failed"]), esc(size(w.get("memory"))),
                  esc(f"{w['seen_ago']:.1f} s ago"),
                  f'<span class="state-{esc(w["state"])}">{esc(w["state"])}</span>'])
            for w in s["workers"]]
    return table(WORKER_COLUMNS, rows)


def queues(s: Snapshot) -> str:
    """Rates in and out are the difference of two snapshots: a dash on the first paint, then
    filled by the page's script from each row's counters (data-submitted, data-finished)."""
    rows = [(f' data-queue="{esc(q["name"])}" data-submitted="{esc(q["submitted"])}"'
             f' data-finished="{esc(q["finished"])}"',
             [esc(q["name"]), esc(q["depth"]), esc(q["running"]), DASH, DASH,
              esc(q["submitted"]), esc(q["finished"]), esc(q.get("desired_workers", 0)),
              esc(limit(q["rate"], " /s")),
              esc(limit(q["concurrency"], "")), _queue_state(q)])
            for q in s["queues"]]
    return table(QUEUE_COLUMNS, rows)


def _queue_state(q: dict[str, Any]) -> str:
    """A paused queue (``taskq queue pause``) leases nothing; any other is active."""
    state = "paused" if q.get("paused") else "active"
    return f'<span class="state-{state}">{state}</span>'


def jobs(s: Snapshot) -> str:
    rows = []
    for j in reversed(s["jobs"]):
        ended, total = j["done"] + j["failed"], j["done"] + j["failed"] + j["open"]
        bar = (f'<progress max="{total or 1}" value="{ended}" data-job="{esc(j["name"])}">'
               f'{ended} of {total}</progress>')
        rows.append(("", [esc(j["name"]), bar, esc(j["done"]), esc(j["failed"]),
                          esc(j["open"]), esc(j["waiting"])]))
    return table(JOB_COLUMNS, rows)


def failed(s: Snapshot, writable: bool = False) -> str:
    if not s["failed"]:
        return '<p class="muted">none</p>'
    out = []
    for t in s["failed"]:
        last = t["attempts"][-1] if t["attempts"] else {}
        kind = f" ({last['error_type']})" if last.get("error_type") else ""
        out.append(f'<div class="failed-task"><a href="#task/{esc(_quote(t["task_id"]))}">'
                   f'{esc(t["task_id"])}</a><span class="muted"> job {esc(t["job"])} · '
                   f'{esc(t["outcome"])}{esc(kind)} · {clock(t["ended"])}</span>'
                   f'{replay_action(t, writable)}'
                   f'<pre class="traceback">{esc(last.get("detail") or "")}</pre></div>')
    return "".join(out)


def replay_action(t: dict[str, Any], writable: bool) -> str:
    """A failed task's links to its replays, and how to replay it: a button that posts to
    the page's server when it asks for a token (``writable``), else the command to run."""
    links = "".join(f' <span class="muted">replayed as</span> <a href="#task/'
                    f'{esc(_quote(new_id))}">{esc(new_id)}</a>'
                    for new_id in t.get("replayed_as", ()))
    if t.get("replay_of"):
        links += (f' <span class="muted">replay of</span> <a href="#task/'
                  f'{esc(_quote(t["replay_of"]))}">{esc(t["replay_of"])}</a>')
    if not t.get("replayable"):
        return links
    if writable:
        return (f'{links}<form class="replay" method="post" action="/api/tasks/'
                f'{esc(_quote(t["task_id"]))}/replay"><button>Replay</button></form>')
    return (f'{links} <span class="muted">replay:</span> '
            f'<code>taskq replay {esc(t["task_id"])}</code>')


def _quote(text: str) -> str:
    """As JavaScript's encodeURIComponent, which the page's router decodes."""
    return quote(text, safe="!'()*-._~")


_TEMPLATE: list[string.Template] = []


def template() -> string.Template:
    if not _TEMPLATE:
        text = resources.files("taskq.master.web").joinpath("index.html").read_text("utf-8")
        _TEMPLATE.append(string.Template(text))
    return _TEMPLATE[0]


def render(s: Snapshot, writable: bool = False) -> str:
    """The whole page for one snapshot; ``writable``: it may replay failed tasks (the
    server asks for a token)."""
    return template().substitute(
        summary=summary(s), updated=f"as of {clock(s['now'])}", now=esc(s["now"]),
        figures=tiles(s), charts=charts.charts(s["series"], s["now"]), workers=workers(s),
        queues=queues(s), jobs=jobs(s), failed=failed(s, writable))
