"""``taskq primitives``: the shared primitives the master hosts, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

from taskq.protocol.prims import PrimRow

_COLUMNS = ("name", "kind", "holders", "waiters", "size", "capacity")


def render(rows: list[PrimRow], as_json: bool) -> str:
    """A table with one line per primitive (or a JSON list of objects)."""
    if as_json:
        return json.dumps([asdict(r) for r in rows], indent=2)
    if not rows:
        return "no shared primitives"
    table = [_COLUMNS] + [tuple(str(getattr(r, c)) for c in _COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in table)
