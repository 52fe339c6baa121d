"""How the terminal shows history and progress: ``taskq inspect``, ``taskq history``,
``taskq top``, per-job progress in ``taskq status``, and the bar of ``results --wait``.

    Remote.inspect / history / monitor ──► plain dicts ──► rich tables (or JSON lines)

No value is ever cut: on a terminal a table's cells fold onto more lines when it is narrow;
on a pipe or file (``stdout_console``) the table takes the width its values need. ``top``
ends on ``q`` (or Ctrl-C). The bar of ``results --wait`` is on stderr; when stdout is the
same terminal it is cleared before each batch of results is written, then drawn again.

Only text: no task's arguments or result appear, and nothing here talks to the master
beyond the calls the CLI passes in.
"""

from __future__ import annotations

import json
import os
import select
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from taskq.client.track import new_bar
from taskq.protocol.progress import describe_progress

PIPE_WIDTH = 100_000  # on a pipe, wide enough that no row of any table is folded


def stdout_console() -> Console:
    """The console for a command's tables: the terminal's width on a terminal; on a pipe or
    file, as wide as the rows need (a reader or a script gets every value whole)."""
    return Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)


def new_table(columns: tuple[str, ...], title: str | None = None,
              right: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold (never cut) when the terminal is too narrow for them."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold",
                         justify="right" if column in right else "left")
    return table


def when(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%Y-%m-%d %H:%M:%S") if wall else "-"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def size(n: int) -> str:
    """Bytes in binary units (``-`` for 0: unknown)."""
    if not n:
        return "-"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def print_inspect(task: dict[str, Any], console: Console) -> None:
    outcome = task["outcome"] or task.get("state", "")
    console.print(f"task {task['task_id']}  job {task['job']}  queue {task['queue']}  "
                  f"outcome [bold]{outcome}[/]  ({task.get('state', '')})")
    if task.get("replay_of"):
        console.print(f"replay of {task['replay_of']}", markup=False, highlight=False)
    if task.get("replayed_as"):
        console.print(f"replayed as {', '.join(task['replayed_as'])}", markup=False,
                      highlight=False)
    table = new_table(("#", "worker", "host", "pid", "queued", "started", "ended", "wait",
                       "ran", "outcome"))
    for a in task["attempts"]:
        wait = a["started"] - a["queued"] if a["started"] and a["queued"] else None
        ran = a["ended"] - a["started"] if a["started"] and a["ended"] else None
        table.add_row(str(a["n"]), a["worker"] or "-", a["host"] or "-", str(a["pid"] or "-"),
                      when(a["queued"]), when(a["started"]), when(a["ended"]), seconds(wait),
                      seconds(ran), a["outcome"] + (f" ({a['error_type']})"
                                                    if a["error_type"] else ""))
    console.print(table)
    for a in task["attempts"]:
        if a["detail"] and a["outcome"] != "ok":
            console.print(f"attempt {a['n']}: {a['outcome']}", style="bold")
            console.print(a["detail"].rstrip(), markup=False, highlight=False)


def print_history(tasks: list[dict[str, Any]], console: Console) -> None:
    table = new_table(("task", "job", "queue", "attempts", "ended", "outcome", "error"))
    for t in tasks:
        last = t["attempts"][-1] if t["attempts"] else {}
        table.add_row(t["task_id"], t["job"], t["queue"], str(len(t["attempts"])),
                      when(t["ended"]), t["outcome"] or "running",
                      last.get("error_type") or (_first_line(last.get("detail", ""))
                                                 if t["outcome"] not in ("", "ok") else ""))
    console.print(table)
    console.print(f"{len(tasks)} task(s)")


def print_failed(rows: list[dict[str, Any]], console: Console) -> None:
    """``taskq failed``: a task a row, its detail on one line (folded, never cut)."""
    table = new_table(("task", "queue", "function", "failed at", "error", "detail"))
    for r in rows:
        replayed = f" (replayed as {', '.join(r['replayed_as'])})" if r["replayed_as"] else ""
        table.add_row(Text(r["task_id"]), Text(r["queue"]), Text(r["function"]),
                      when(r["ended"]), Text(r["error_type"]), Text(r["detail"] + replayed))
    console.print(table)
    console.print(f"{len(rows)} failed task(s); `taskq replay ID` runs one again")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def json_lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = new_table(("job", "progress", "done", "failed", "open", "results waiting"),
                      "jobs", right=("done", "failed", "open", "results waiting"))
    for j in jobs:
        total = j["done"] + j["failed"] + j["open"]
        table.add_row(j["name"], _bar(j["done"] + j["failed"], total), str(j["done"]),
                      str(j["failed"]), str(j["open"]), str(j["waiting"]))
    return table


def _bar(done: int, total: int, width: int = 20) -> str:
    frac = done / total if total else 1.0
    filled = round(frac * width)
    return f"{'█' * filled}{'░' * (width - filled)} {frac * 100:3.0f}%"


def top_view(snap: dict[str, Any], address: str) -> Group:
    """One frame of ``taskq top``: workers, queues, jobs and the last 15 minutes."""
    workers = new_table(("worker", "host", "pid", "procs", "busy", "done", "failed", "memory",
                         "seen", "state"), f"taskq master {address}  (up {snap['uptime']:.0f} s)")
    for w in snap["workers"]:
        workers.add_row(w["worker_id"], w["host"], str(w["pid"]), str(w["procs"]),
                        str(w["busy"]), str(w["done"]), str(w["failed"]),
                        size(w.get("memory", 0)), f"{w['seen_ago']:.1f}s", w["state"])
    queues = new_table(("queue", "depth", "running", "submitted", "finished", "rate limit",
                        "concurrency limit"), "queues")
    for q in snap["queues"]:
        queues.add_row(q["name"], str(q["depth"]), str(q["running"]), str(q["submitted"]),
                       str(q["finished"]), f"{q['rate']:g}/s" if q.get("rate") else "no limit",
                       str(q["concurrency"]) if q.get("concurrency") else "no limit")
    p = snap["percentiles"]
    figures = (f"last 15 min: {snap['totals']['done']} done, {snap['totals']['failed']} "
               f"failed; wait p50 {seconds(p['wait_p50'])} p99 {seconds(p['wait_p99'])}; "
               f"run p50 {seconds(p['run_p50'])} p99 {seconds(p['run_p99'])}")
    return Group(workers, queues, jobs_table(snap["jobs"]), figures)


QUIT_KEYS = frozenset("qQ")


def run_top(monitor: Callable[[], dict[str, Any]], address: str, console: Console,
            once: bool, every: float = 1.0) -> None:
    """Print one frame (``once``), or redraw the view every ``every`` s until ``q`` is
    pressed (Ctrl-C raises KeyboardInterrupt, which the command takes as a clean end)."""
    if once:
        console.print(top_view(monitor(), address))
        return
    with keys() as pressed, Live(top_view(monitor(), address), console=console, screen=True,
                                 auto_refresh=False) as live:
        while not QUIT_KEYS & set(pressed(every)):  # waits for a key at most `every` s
            live.update(top_view(monitor(), address), refresh=True)


@contextmanager
def keys() -> Iterator[Callable[[float], str]]:
    """While inside: a function that returns the keys pressed within a timeout ("" if none).
    A terminal's stdin is put in cbreak mode (keys arrive unbuffered, Ctrl-C still
    interrupts) and restored after; with no terminal, it only waits."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None

    def pressed(timeout: float) -> str:
        if fd is None:
            select.select([], [], [], timeout)
            return ""
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 64).decode(errors="replace") if ready else ""

    if fd is None:
        yield pressed
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class ResultsBar:
    """Wraps the writer of ``taskq results``: after each batch, the bar shows the results
    written (and failed) of those written plus those still open on the master. When the
    results go to the bar's terminal too (``shared``), the bar is cleared while a batch is
    written, so a result line never starts on the bar's line."""

    def __init__(self, write: Any, open_count: Callable[[], int | None], job: str,
                 console: Console | None = None, shared: bool = False) -> None:
        self._write = write
        self._open_count = open_count
        self.bar = new_bar(console)
        self.bar.live.transient = shared  # stopping it erases its line
        self._shared = shared
        self._task = self.bar.add_task(f"job {job}", total=None, failed=0)

    @contextmanager
    def _cleared(self) -> Iterator[None]:
        if not self._shared:
            yield
            return
        self.bar.stop()  # erases the bar; the cursor is at the start of its line
        try:
            yield
        finally:
            self.bar.start()

    def show_progress(self, progress: dict[str, Any]) -> None:
        """Running tasks that reported progress: a line each above the bar."""
        for line in progress_lines(progress):
            self.bar.console.print(line, markup=False, highlight=False)

    def __call__(self, batch: list[Any]) -> None:
        with self._cleared():
            self._write(batch)
        still_open = self._open_count() or 0
        done = self._write.written
        self.bar.update(self._task, completed=done, total=done + still_open,
                        failed=self._write.failed)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def same_terminal() -> bool:
    """Do stdout and stderr write to one terminal (results and the bar share its lines)?"""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty() and os.path.samestat(
            os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):
        return False


def progress_lines(progress: dict[str, Any]) -> list[str]:
    """The lines ``taskq results --wait`` shows for running tasks that reported."""
    return [f"progress {task_id}: {progress_text(value)}"
            for task_id, value in sorted(progress.items())]


def progress_text(value: Any) -> str:
    """A progress as the CLI shows it: "40/100 (40%) parsing", "12 files"."""
    return describe_progress(value) if value else "-"
