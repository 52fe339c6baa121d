"""What the ``taskq`` command line accepts, read from its own ``--help``: for tests that check
command lines written in deploy files and docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache

from cluster import ROOT


@cache
def help_text(command: str) -> str:
    """`taskq COMMAND --help`, wide enough that no option name is cut."""
    env = {**os.environ, "COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "taskq", command, "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def accepts(command: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text(command)) is not None


def unknown_flags(argv: list[str]) -> list[str]:
    """Flags in ``argv`` (a subcommand and its arguments) that its --help does not list."""
    command, *args = argv
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    return [f for f in flags if not accepts(command, f)]


def option(argv: list[str], flag: str) -> str | None:
    """The value of the last ``flag VALUE`` or ``flag=VALUE`` in argv (click keeps the last)."""
    value = None
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif word.startswith(flag + "="):
            value = word.split("=", 1)[1]
    return value
