"""Progress bars in the terminal: ``taskq.track(futures)`` and the bar of
``taskq results --wait``, drawn with rich on stderr.

    track(futures) ──► as_completed ──► advance the bar (done, failed) ──► yield each future
    ResultsBar(write) ──► each batch written ──► bar: done/failed of total (open asked once
                                                 per batch), rate, time left
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, as_completed
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

T = TypeVar("T")


def new_bar(console: Console | None = None) -> Progress:
    # rich loads here, when a bar is drawn: ``import taskq`` does not pay for it
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("[red]{task.fields[failed]} failed"), TaskProgressColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console or Console(stderr=True), transient=False)


def track(futures: Iterable[Future[T]], description: str = "tasks", *,
          timeout: float | None = None,
          console: Console | None = None) -> Iterator[Future[T]]:
    """Yield futures as they complete while drawing a progress bar (done, failed, rate,
    time left) on stderr, as ``rich.progress.track`` does for an iterable."""
    pending = list(futures)
    with new_bar(console) as bar:
        task = bar.add_task(description, total=len(pending), failed=0)
        failed = 0
        for future in as_completed(pending, timeout=timeout):
            if future.cancelled() or future.exception() is not None:
                failed += 1
            bar.update(task, advance=1, failed=failed)
            yield future


class ResultsBar:
    """Wraps the writer of ``taskq results``: after each batch, the bar shows the results
    written (and failed) of those written plus those still open on the master."""

    def __init__(self, write: Any, open_count: Callable[[], int | None], job: str,
                 console: Console | None = None) -> None:
        self._write = write
        self._open_count = open_count
        self.bar = new_bar(console)
        self._task = self.bar.add_task(f"job {job}", total=None, failed=0)

    def show_progress(self, progress: dict[str, Any]) -> None:
        """Running tasks that reported progress: a line each above the bar."""
        from taskq.cli.tasks import progress_lines

        for line in progress_lines(progress):
            self.bar.console.print(line, markup=False, highlight=False)

    def __call__(self, batch: list[Any]) -> None:
        self._write(batch)
        still_open = self._open_count() or 0
        done = self._write.written
        self.bar.update(self._task, completed=done, total=done + still_open,
                        failed=self._write.failed)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
