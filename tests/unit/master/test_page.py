"""The dashboard rendered on the server from a snapshot of the pure state (no processes): the
first paint holds the numbers, every value is escaped, the charts have axes with units and
break their lines at missing minutes, p99 is one figure named the same everywhere, and the
docs' screenshot was taken from the page as it is now."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from web_helpers import DOCS_SHOT, WRITE_SHOT_ENV, page_sources_digest, png_stamp

from taskq.master.state import BrokerState, WorkerInfo, views
from taskq.master.web import charts, page
from taskq.master.web.fmt import DASH
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions

pytestmark = pytest.mark.timeout(30)

WALL = 1_800_000_000.0  # a wall time on a minute's start
TRACE = "Traceback (most recent call last):\nKeyError: 'k'\n"


class Cells(HTMLParser):
    """Text of every cell by table id, of every tile by key, and the chart's SVG texts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tiles: dict[str, str] = {}
        self.svg_text: list[str] = []
        self._table = self._tile = ""
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self.tables[self._table][-1].append("")
            self._in = "td"
        elif tag == "div" and a.get("data-tile"):
            self._tile = a["data-tile"] or ""
        elif tag == "b" and self._tile:
            self._in = "tile"
        elif tag == "text":
            self.svg_text.append("")
            self._in = "svg"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "b", "text"):
            self._in = None
        if tag == "table":
            self._table = ""

    def handle_data(self, data: str) -> None:
        if self._in == "td":
            self.tables[self._table][-1][-1] += data
        elif self._in == "tile":
            self.tiles[self._tile] = self.tiles.get(self._tile, "") + data
        elif self._in == "svg":
            self.svg_text[-1] += data


def task(n: int, job: str = "J") -> TaskMsg:
    return TaskMsg(f"t{n}", f"job:{job}", b"f", b"a", TaskOptions())


def snapshot(state: BrokerState, now: float) -> dict[str, Any]:
    shot = views.render_monitor(views.monitor_copy(state, now))
    shot.update(uptime=now, durable=False)
    return shot


def busy_state(worker: str = "w1", job: str = "J") -> BrokerState:
    """One worker that ran three tasks (one failed) and runs two more; one more queued."""
    state = BrokerState(lost_after=5.0, max_lost=2, max_payload=1000)
    state.history.wall_offset = WALL
    state.register(WorkerInfo(worker, "hostA", 11, 2), 0.0)
    state.submit([task(n, job) for n in range(6)], 1.0)
    for n, status in ((0, Status.OK), (1, Status.OK), (2, Status.ERROR)):
        state.lease(worker, 1, 2.0)
        state.complete(worker, [ResultMsg(f"t{n}", status, b"v", TRACE if n == 2 else "",
                                          "hostA:11", 0.25)], 3.0)
    state.lease(worker, 2, 4.0)
    state.start(worker, ["t3", "t4"], 4.0)
    assert state.heartbeat(worker, ["t3", "t4"], 2, 5.0)
    return state


def test_the_first_paint_holds_the_tiles_and_tables_of_the_snapshot() -> None:
    shot = snapshot(busy_state(), 6.0)
    cells = Cells(page.render(shot))
    assert cells.tiles["workers"] == "1" and cells.tiles["queued"] == "1"
    assert cells.tiles["running"] == "2"
    assert (cells.tiles["done"], cells.tiles["failed"]) == ("2", "1")
    # the bound of the bin holding 0.25 s, each figure on one line
    assert cells.tiles["run"] == "258\u00a0ms / 258\u00a0ms"
    (row,) = cells.tables["workers"][1:]
    assert row == ["w1", "hostA", "11", "2", "2", "2", "1", DASH, "1.0 s ago", "active"]
    (queue,) = cells.tables["queues"][1:]
    # two running and one queued, on a worker of two processes: two workers would run all
    assert queue == ["default", "1", "2", DASH, DASH, "6", "3", "2", "no limit", "no limit",
                     "active"]
    assert cells.tiles["desired"] == "2"
    (job,) = cells.tables["jobs"][1:]
    assert job == ["J", "3 of 6", "2", "1", "3", "3"]
    assert "KeyError: &#x27;k&#x27;" in page.render(shot)
    assert "${" not in page.render(shot) and "connecting" not in page.render(shot)


def test_a_paused_queue_and_a_draining_worker_are_painted_so() -> None:
    state = busy_state()
    state.pause_queue("default", True)
    state.limits.paused.add("idle")  # paused with nothing in it: still listed
    state.drain_worker("w1")
    cells = Cells(page.render(snapshot(state, 6.0)))
    assert [(q[0], q[-1]) for q in cells.tables["queues"][1:]] == [
        ("default", "paused"), ("idle", "paused")]
    (row,) = cells.tables["workers"][1:]
    assert row[-1] == "draining"


def test_a_lost_worker_is_painted_busy_with_nothing() -> None:
    state = busy_state()
    state.expire(20.0)
    cells = Cells(page.render(snapshot(state, 20.0)))
    (row,) = cells.tables["workers"][1:]
    assert (row[0], row[4], row[-1]) == ("w1", "0", "lost")
    assert cells.tiles["workers"] == "0" and cells.tiles["running"] == "0"


def test_every_value_is_escaped() -> None:
    evil = "<img src=x onerror=alert(1)>\"'&"
    text = page.render(snapshot(busy_state(worker=evil, job=evil), 6.0))
    assert "<img" not in text and "onerror=alert(1)>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;" in text
    cells = Cells(text)
    assert cells.tables["workers"][1][0] == evil and cells.tables["jobs"][1][0] == evil


def test_p99_is_the_one_tail_figure_named_on_tiles_charts_and_series() -> None:
    shot = snapshot(busy_state(), 6.0)
    text = page.render(shot)
    assert "p95" not in text
    assert {"wait p50 / p99 (15 min)", "run p50 / p99 (15 min)"} <= set(re.findall(
        r'<span class="muted">([^<]*)</span>', text))
    assert all(f">{name}</li>" in text for name in ("wait p50", "wait p99", "run p50",
                                                     "run p99"))
    (minute,) = shot["series"]
    assert minute["run_p99"] == shot["percentiles"]["run_p99"]  # one minute: the same figure


def series(*minutes: tuple[int, float | None]) -> list[dict[str, Any]]:
    """Per-minute rows: (minutes ago, p50 of run) with everything else alike."""
    now_minute = WALL
    return [{"start": now_minute - 60 * ago, "done": 3, "failed": 1, "submitted": 4,
             "wait_p50": None, "wait_p99": None, "run_p50": run, "run_p99": run}
            for ago, run in minutes]


def polylines(svg: str, cls: str) -> list[str]:
    return re.findall(rf'<polyline class="{cls}" points="([^"]*)"', svg)


def test_lines_break_where_a_minute_has_no_figure() -> None:
    svg = charts.latency(series((9, 0.2), (8, 0.3), (6, 0.25), (4, None), (3, 0.4), (2, 0.4),
                                (1, 0.1)), WALL + 30)
    lines = polylines(svg, "run")
    assert [len(p.split()) for p in lines] == [2, 3]  # minute 7 missing, minute 4 no figure
    assert svg.count('<circle class="run"') == 6  # the lone minute 6 is a dot
    assert polylines(svg, "wait") == [] and '<circle class="wait"' not in svg


def test_the_charts_have_axes_with_units() -> None:
    rows = series((3, 0.2), (0, 0.7))
    rate = Cells(charts.throughput(rows, WALL)).svg_text
    assert rate == ["0", "2", "4", "14", "10", "5", "0", "minutes ago", "tasks / min"]
    lat = Cells(charts.latency(rows, WALL)).svg_text
    assert lat[:3] == ["0", "400", "800"] and lat[-1] == "time (ms)"
    slow = Cells(charts.latency(series((0, 3.1)), WALL)).svg_text
    assert slow[:3] == ["0", "2", "4"] and slow[-1] == "time (s)"
    empty = charts.throughput([], WALL)
    assert "no tasks ended in the last 15 minutes" in empty and "tasks / min" in empty


@pytest.mark.parametrize(("value", "top"), [(0, 1.0), (0.3, 0.4), (1, 1.0), (3.01, 4.0),
                                            (7, 8.0), (9, 10.0), (36, 40.0), (0.012, 0.02)])
def test_an_axis_top_is_round_and_covers_the_value(value: float, top: float) -> None:
    assert charts.nice_top(value) == pytest.approx(top)


def test_minutes_fall_in_the_slots_of_the_last_fifteen() -> None:
    assert charts.slot_of(WALL, WALL + 59) == 14
    assert charts.slot_of(WALL - 14 * 60, WALL) == 0
    assert charts.slot_of(WALL - 15 * 60, WALL) is None
    assert charts.slot_of(WALL + 60, WALL) is None


def test_the_docs_screenshot_was_taken_from_the_page_as_it_is() -> None:
    stamp = png_stamp(DOCS_SHOT.read_bytes())
    assert stamp == page_sources_digest(), (
        f"the page changed since {DOCS_SHOT.name} was taken: run {WRITE_SHOT_ENV}=1 "
        f"python -m pytest tests/cluster/master/test_dashboard_page.py")
