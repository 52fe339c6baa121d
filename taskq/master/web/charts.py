"""The dashboard's two charts as SVG, drawn on the server from the snapshot's per-minute
series: tasks ended per minute, and the queue-wait and run-time percentiles per minute.

    monitor()["series"] ── one dict per minute with activity ──► slot 0..14 (14 = this minute)
        throughput(): stacked bars, done and failed            y: tasks / min
        latency():    p50 and p99 of wait and of run, lines     y: ms or s
                      broken where a minute has no figure (no line is drawn across a gap)

Both have labelled axes with their units (x: minutes ago) and a legend beneath. Only
attributes, classes and text: no inline style, so the page's strict CSP holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from taskq.defaults import STATS_WINDOWS
from taskq.master.web.fmt import esc, number

WIDTH, HEIGHT = 320, 172
LEFT, RIGHT, TOP, BOTTOM = 46.0, 312.0, 8.0, 134.0  # the plot area inside the axes
SLOT = (RIGHT - LEFT) / STATS_WINDOWS
X_TICKS = (14, 10, 5, 0)  # minutes ago that get a label
LINES = (("wait_p50", "wait", "wait p50"), ("wait_p99", "wait p99", "wait p99"),
         ("run_p50", "run", "run p50"), ("run_p99", "run p99", "run p99"))

Series = Sequence[dict[str, Any]]


def slot_of(start: float, now: float) -> int | None:
    """Which of the STATS_WINDOWS slots the minute starting at ``start`` falls in, or None
    when it is out of the chart (the last slot is the current minute)."""
    ago = round((math.floor(now / 60.0) * 60.0 - start) / 60.0)
    slot = STATS_WINDOWS - 1 - ago
    return slot if 0 <= slot < STATS_WINDOWS else None


def nice_top(value: float, least: float = 0.0) -> float:
    """The smallest of 1, 2, 4, 6, 8 times a power of ten that is >= value (and >= least):
    the axis' top, so that its middle tick is a round number too."""
    value = max(value, least)
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 6, 8, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # (not reached)


def x_of(slot: int) -> float:
    return LEFT + (slot + 0.5) * SLOT


def y_of(value: float, top: float) -> float:
    return BOTTOM - (BOTTOM - TOP) * min(value, top) / top


def runs(points: Iterable[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """Points (slot, value) split where a slot is missing: each run is drawn as one line."""
    out: list[list[tuple[int, float]]] = []
    for slot, value in sorted(points):
        if out and out[-1][-1][0] == slot - 1:
            out[-1].append((slot, value))
        else:
            out.append([(slot, value)])
    return out


def axes(top: float, scale: float, y_title: str) -> list[str]:
    """Both axes: y ticks at 0, top/2 and top (labels are value * scale), x ticks in
    minutes ago, and each axis' title with its unit."""
    parts = []
    for value in (0.0, top / 2, top):
        y = y_of(value, top)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
                     f'{number(value * scale)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}"/>'
                 f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}"/>')
    for ago in X_TICKS:
        x = x_of(STATS_WINDOWS - 1 - ago)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{BOTTOM}" x2="{x:.1f}" '
                     f'y2="{BOTTOM + 3}"/><text class="tick" x="{x:.1f}" y="{BOTTOM + 13}" '
                     f'text-anchor="middle">{ago}</text>')
    mid_x, mid_y = (LEFT + RIGHT) / 2, (TOP + BOTTOM) / 2
    parts.append(f'<text class="title" x="{mid_x:.1f}" y="{HEIGHT - 4}" '
                 f'text-anchor="middle">minutes ago</text>'
                 f'<text class="title" transform="translate(11 {mid_y:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{esc(y_title)}</text>')
    return parts


def _svg(label: str, parts: list[str], empty: bool, what: str) -> str:
    if empty:
        parts.append(f'<text class="empty" x="{(LEFT + RIGHT) / 2:.1f}" '
                     f'y="{(TOP + BOTTOM) / 2:.1f}" text-anchor="middle">no {what} in the '
                     f'last {STATS_WINDOWS} minutes</text>')
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(label)}">'
            f'<title>{esc(label)}</title>{"".join(parts)}</svg>')


def throughput(series: Series, now: float) -> str:
    """Tasks ended per minute, done and failed stacked, as an SVG."""
    slots = [(slot, w) for w in series if (slot := slot_of(w["start"], now)) is not None]
    top = nice_top(max((w["done"] + w["failed"] for _, w in slots), default=0), least=2)
    parts = axes(top, 1.0, "tasks / min")
    for slot, w in slots:
        x, y_done = x_of(slot) - SLOT * 0.4, y_of(w["done"], top)
        y_all = y_of(w["done"] + w["failed"], top)
        parts.append(f'<rect class="ok" x="{x:.1f}" y="{y_done:.1f}" width="{SLOT * 0.8:.1f}" '
                     f'height="{BOTTOM - y_done:.1f}"/>')
        if w["failed"]:
            parts.append(f'<rect class="bad" x="{x:.1f}" y="{y_all:.1f}" '
                         f'width="{SLOT * 0.8:.1f}" height="{y_done - y_all:.1f}"/>')
    empty = not any(w["done"] + w["failed"] for _, w in slots)
    return _svg("tasks ended per minute", parts, empty, "tasks ended")


def latency(series: Series, now: float) -> str:
    """Queue wait and run time per minute, p50 solid and p99 dashed, as an SVG; a line is
    broken where a minute has no figure."""
    points = {key: [(slot, w[key]) for w in series if w.get(key) is not None
                    and (slot := slot_of(w["start"], now)) is not None]
              for key, _, _ in LINES}
    top = nice_top(max((v for pts in points.values() for _, v in pts), default=0.0))
    scale, unit = (1000.0, "ms") if top < 1 else (1.0, "s")
    parts = axes(top, scale, f"time ({unit})")
    for key, cls, _ in LINES:
        for run in runs(points[key]):
            if len(run) > 1:
                coords = " ".join(f"{x_of(s):.1f},{y_of(v, top):.1f}" for s, v in run)
                parts.append(f'<polyline class="{cls}" points="{coords}"/>')
            parts.extend(f'<circle class="{cls}" cx="{x_of(s):.1f}" cy="{y_of(v, top):.1f}" '
                         f'r="1.8"/>' for s, v in run)
    empty = not any(points.values())
    return _svg("queue wait and run time per minute, p50 and p99", parts, empty,
                "tasks ran")


def legend_bars() -> str:
    return ('<ul class="legend"><li><span class="swatch ok"></span>done</li>'
            '<li><span class="swatch bad"></span>failed</li></ul>')


def legend_lines() -> str:
    items = "".join(f'<li><svg class="key" viewBox="0 0 20 6" aria-hidden="true">'
                    f'<line class="{cls}" x1="0" y1="3" x2="20" y2="3"/>'
                    f'<circle class="{cls}" cx="10" cy="3" r="2.2"/></svg>{name}</li>'
                    for _, cls, name in LINES)
    return f'<ul class="legend">{items}</ul>'


def charts(series: Series, now: float) -> str:
    """Both charts, each a figure with its caption and legend."""
    return (f'<figure id="chart-rate"><figcaption>tasks ended per minute</figcaption>'
            f'{throughput(series, now)}{legend_bars()}</figure>'
            f'<figure id="chart-lat"><figcaption>queue wait and run time per minute, '
            f'p50 and p99</figcaption>{latency(series, now)}{legend_lines()}</figure>')
