"""``taskq cancel`` and the running-task views of ``taskq status --job`` and ``taskq results
--wait`` (``cancel`` joins the ``taskq`` command as this is imported).

    taskq cancel ID... | --job NAME ──► Remote.cancel_tasks(ids, job=NAME, running=True)
        one line per task: cancelled (never ran) / stopping (it ran: its worker kills it) /
        already ended (how) / unknown; exit 1 if any could not be cancelled
    taskq status --job NAME ──► Remote.running_tasks(NAME): worker, since, progress
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from taskq.cli.common import MasterOpts, fail, reaches_master, user_errors
from taskq.cli.render import progress_text
from taskq.client import jobs
from taskq.protocol.api import BrokerAPI
from taskq.protocol.replies import CancelOutcome


@reaches_master
def cancel(
    task_ids: Annotated[list[str] | None, typer.Argument(
        help="Ids of the tasks to cancel (as `taskq submit` or `taskq status` print them).",
        show_default=False)] = None,
    job: Annotated[str | None, typer.Option(help="Cancel every open task of this job.")]
    = None,
    *,
    master: MasterOpts,
) -> None:
    """Cancel tasks wherever they are: a queued one never runs, a running one is stopped
    on its worker (its process killed and replaced) and ends CANCELLED, never retried.
    Exit 1 if a task had already ended or is unknown."""
    if not task_ids and not job:
        raise typer.BadParameter("name task ids, or a job with --job", param_hint="TASK_IDS")
    with user_errors():
        link = master.link()
        try:
            if job and link.remote.open_count(jobs.outbox_of(job)) is None:
                fail(f"no job named {job}")
            out = link.remote.cancel_tasks(list(task_ids or []), job=job or "",
                                           running=True)
        finally:
            link.close()
    if not _report(out) and job and not task_ids:
        typer.echo(f"job {job} has no open task: nothing to cancel")


def _report(out: CancelOutcome) -> int:
    """Print what became of each task; exit 1 if any could not be cancelled."""
    for task_id in out.cancelled:
        typer.echo(f"{task_id} cancelled: it never runs")
    for task_id in out.stopping:
        typer.echo(f"{task_id} stopping: its worker stops it; it ends cancelled")
    for task_id, how in out.ended.items():
        typer.echo(f"taskq: error: task {task_id} already ended ({how}): nothing to cancel",
                   err=True)
    for task_id in out.unknown:
        typer.echo(f"taskq: error: no task {task_id} on the master (check the id)", err=True)
    shown = len(out.cancelled) + len(out.stopping) + len(out.ended) + len(out.unknown)
    if out.ended or out.unknown:
        raise typer.Exit(1)
    return shown


def show_running(remote: BrokerAPI, job: str, as_json: bool) -> None:
    """``taskq status --job NAME``: the job's open count and its running tasks."""
    open_now = remote.open_count(jobs.outbox_of(job))
    if open_now is None:
        fail(f"no job named {job}")
    rows = remote.running_tasks(job)
    if as_json:
        typer.echo(json.dumps({"job": job, "open": open_now, "running": rows}, indent=2))
        return
    typer.echo(f"job {job}: {open_now} open task(s), {len(rows)} running")
    now = time.time()
    for row in rows:
        since = f"{now - row['since']:.0f}s" if row["since"] else "?"
        stopping = " (stopping)" if row["stopping"] else ""
        typer.echo(f"  {row['task_id']}  on {row['worker']} for {since}{stopping}  "
                   f"progress {progress_text(row['progress'])}")


def job_status(job: str, as_json: bool, master: MasterOpts) -> None:
    with user_errors():
        link = master.link()
        try:
            show_running(link.remote, job, as_json)
        finally:
            link.close()
