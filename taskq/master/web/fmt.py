"""How the dashboard writes a number: durations, sizes, limits and times.

One place for the page's wording, so that the tiles, the tables and the charts' axes say a
figure the same way (``app.js`` only localises the times this writes in UTC).
"""

from __future__ import annotations

import html
import time

DASH = "\u2013"  # an en dash: a figure not known (yet)


def esc(value: object) -> str:
    """Any value as HTML text or attribute value (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def seconds(value: float | None) -> str:
    """``None`` -> DASH; under 1 s in milliseconds, else seconds with two decimals."""
    if value is None:
        return DASH
    if value < 1:
        return f"{value * 1000:.{1 if value < 0.01 else 0}f} ms"
    return f"{value:.2f} s"


def size(n: int | None) -> str:
    """Bytes in binary units; DASH for 0 or unknown."""
    if not n:
        return DASH
    value, units = float(n), ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{value:.{1 if i else 0}f} {units[i]}"


def number(value: float) -> str:
    """A number with at most three decimals and no trailing zeros."""
    text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def limit(value: float, unit: str) -> str:
    """A queue's limit (0 is none)."""
    return f"{number(value)}{unit}" if value else "no limit"


def clock(wall: float) -> str:
    """A wall time as ``<time>``: HH:MM:SS UTC, which the page's script shows in local time."""
    if not wall:
        return DASH
    stamp = time.gmtime(wall)
    return (f'<time datetime="{time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)}">'
            f'{time.strftime("%H:%M:%S", stamp)} UTC</time>')
