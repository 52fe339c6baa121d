"""Task functions for the replay tests: each fails until the test creates its flag file."""

from __future__ import annotations

import os


def needs_flag(path: str, value: int) -> int:
    """``value`` doubled once the file at ``path`` exists; until then it raises."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"flag {path} is missing")
    return value * 2
