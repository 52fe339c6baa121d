"""``taskq failed`` and ``taskq replay``: the tasks that failed for good, and running them
again (they join the ``taskq`` command as this is imported).

    taskq failed [--queue Q] [--since 1h] [--json] ──► Remote.dead_letters ──► a table
    taskq replay ID... | --failed [--queue Q] [--since 1h] [--job NAME]
        ──► Remote.replay(ids, new ids of job NAME) ──► "ID replayed as NEW" a line each;
            one error line per task that could not be, and exit 1
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Annotated

import typer

from taskq.cli.common import MasterOpts, duration, reaches_master, user_errors
from taskq.client import jobs
from taskq.protocol import names
from taskq.protocol.api import BrokerAPI
from taskq.protocol.replies import Replayed

BATCH = 500  # tasks replayed per call (the master takes at most 1,000)

QueueOpt = Annotated[str | None, typer.Option(help="Only tasks of this queue.")]
SinceOpt = Annotated[str | None, typer.Option(help="Only tasks that failed this recently, "
                                                   "e.g. 1h, 30m, 2d.")]


@reaches_master
def failed(
    queue: QueueOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many tasks.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """List the tasks that failed for good (after their retries) and can be replayed,
    newest first: their calls are kept as long as the master's --history."""
    from taskq.cli.render import json_lines, print_failed, stdout_console

    since_at = None if since is None else time.time() - duration(since, "--since")
    rows = master.ask(lambda remote: remote.dead_letters(queue=queue, since=since_at,
                                                         limit=limit))
    if as_json:
        sys.stdout.write(json_lines(rows))
    else:
        print_failed(rows, stdout_console())


@reaches_master
def replay(
    task_ids: Annotated[list[str] | None, typer.Argument(
        help="Ids of failed tasks (as `taskq failed` lists them).", show_default=False)]
    = None,
    all_failed: Annotated[bool, typer.Option(
        "--failed", help="Replay every failed task not replayed yet (with --queue, "
                         "--since: those only).")] = False,
    queue: QueueOpt = None,
    since: SinceOpt = None,
    job: Annotated[str | None, typer.Option(
        help="Job to collect the replays' results by (default: a new one, printed).")]
    = None,
    *,
    master: MasterOpts,
) -> None:
    """Run failed tasks again, each as a new task (a new id) with the same function,
    arguments and options; `taskq inspect` links the two. Exit 1 if any could not be."""
    if bool(task_ids) == all_failed:
        raise typer.BadParameter("name task ids, or --failed (not both)",
                                 param_hint="TASK_IDS")
    if task_ids and (queue or since):
        raise typer.BadParameter("--queue and --since go with --failed", param_hint="--queue")
    since_at = None if since is None else time.time() - duration(since, "--since")
    name = job or jobs.new_job_name()
    with user_errors():
        link = master.link()
        try:
            ids = list(task_ids or []) or _not_replayed(link.remote, queue, since_at)
            out = _replay(link.remote, ids, name)
        finally:
            link.close()
    _report(out, name, all_failed)


def _not_replayed(remote: BrokerAPI, queue: str | None, since: float | None) -> list[str]:
    rows = remote.dead_letters(queue=queue, since=since, limit=1_000_000)
    return [r["task_id"] for r in reversed(rows) if not r["replayed_as"]]  # oldest first


def _replay(remote: BrokerAPI, task_ids: list[str], job: str) -> list[Replayed]:
    outbox = jobs.outbox_of(job)
    prefix = names.task_prefix(outbox)
    out: list[Replayed] = []
    for start in range(0, len(task_ids), BATCH):
        batch = task_ids[start:start + BATCH]
        new_ids = [f"{prefix}{uuid.uuid4().hex[:12]}" for _ in batch]
        out += remote.replay(batch, new_ids, outbox=outbox)
    return out


def _report(out: list[Replayed], job: str, all_failed: bool) -> None:
    done = [r for r in out if r.new_id]
    for r in done:
        typer.echo(f"{r.task_id} replayed as {r.new_id}")
    if done:
        typer.echo(f"job {job}: {len(done)} task(s); `taskq results {job}` collects them")
    elif all_failed and not out:
        typer.echo("no failed task to replay")
    for r in out:
        if r.error:
            typer.echo(f"taskq: error: {r.error}", err=True)
    if any(r.error for r in out):
        raise typer.Exit(1)
