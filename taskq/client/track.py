"""Progress bars in the terminal: ``taskq.track(futures)``, drawn with rich on stderr (the
bar of ``taskq results --wait`` is ``taskq.cli.render.ResultsBar``, on the same ``new_bar``).

    track(futures) ──► as_completed ──► advance the bar (done, failed) ──► yield each future
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, as_completed
from typing import TYPE_CHECKING, TypeVar

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


