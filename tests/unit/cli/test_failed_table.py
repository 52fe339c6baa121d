"""`taskq failed`'s table: on a narrow terminal its cells fold (no value is cut); on a pipe
each task is one whole line; markup-like text in an error is shown as it is."""

from __future__ import annotations

import io

from rich.console import Console

from taskq.cli.render import PIPE_WIDTH, print_failed

TASK = "job:nightly-thumbnails-of-the-whole-photo-archive-0123456789ab"
ROW = {"task_id": TASK, "queue": "default", "function": "reports.build:make_thumbnails",
       "ended": 1_765_000_000.0, "status": "error", "error_type": "FileNotFoundError",
       "detail": "FileNotFoundError: [bold]/data/in.csv[/] is missing",
       "replayed_as": ["job:again-1"]}


def rendered(width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    print_failed([ROW], console)
    return console.export_text()


def test_a_narrow_terminal_folds_every_value_whole() -> None:
    text = rendered(40)
    assert "…" not in text
    cells = ["".join("".join(line.split("│")[i].split()) for line in text.splitlines()
                     if line.count("│") > 2) for i in (1, 3, 6)]
    assert cells[0] == TASK
    assert cells[1] == ROW["function"]
    words = f"{ROW['detail']} (replayed as job:again-1)".split()  # folded at the spaces
    assert cells[2] == "".join(words)  # and the markup-like text shown as it is


def test_on_a_pipe_each_task_is_one_line() -> None:
    text = rendered(PIPE_WIDTH)
    [line] = [line for line in text.splitlines() if TASK in line]
    for value in (ROW["function"], ROW["error_type"], ROW["detail"], "job:again-1"):
        assert value in line
    assert text.splitlines()[-1] == "1 failed task(s); `taskq replay ID` runs one again"
