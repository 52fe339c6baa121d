"""``taskq inspect``, ``taskq explain``, ``taskq history`` and ``taskq top``: the master's
task history, why a task is where it is, and a live view, from the command line (they join
the ``taskq`` command as this is imported)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated

import typer

from taskq.cli.common import MasterOpts, duration, fail, reaches_master, user_errors


@reaches_master
def inspect(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """Show every attempt of a task: worker, times, outcome, traceback."""
    from taskq.cli.render import print_inspect, stdout_console

    task = master.ask(lambda remote: remote.inspect(task_id))
    if task is None:
        fail(f"no task {task_id} in the master's history")
    if as_json:
        typer.echo(json.dumps(task, indent=2))
    else:
        print_inspect(task, stdout_console())


@reaches_master
def explain(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """Say why a task is where it is: waiting (for what), queued (behind what), running
    (where, since when), or how it ended."""
    from taskq.protocol.replies import ExplainKind

    answer = master.ask(lambda remote: remote.explain(task_id))
    if as_json:
        typer.echo(json.dumps(answer.as_dict(), indent=2))
    elif answer.kind is ExplainKind.UNKNOWN:  # an error: one line on stderr, as every other
        fail(f"{task_id}: {answer.summary}")
    else:
        typer.echo(f"{task_id}: {answer.summary}")
        for reason in answer.reasons[1:]:
            typer.echo(f"  - {reason}")
    if answer.kind is ExplainKind.UNKNOWN:
        raise typer.Exit(1)


@reaches_master
def history(
    job: Annotated[str | None, typer.Option(help="Only this job's tasks.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only tasks that failed.")] = False,
    since: Annotated[str | None, typer.Option(help="Only tasks ended this recently, "
                                                   "e.g. 1h.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many tasks.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """List tasks from the master's history, newest first."""
    import time as time_mod

    from taskq.cli.render import json_lines, print_history, stdout_console

    since_at = None if since is None else time_mod.time() - duration(since, "--since")
    rows = master.ask(lambda remote: remote.history(job=job, failed=failed, since=since_at,
                                                             limit=limit))
    if as_json:
        sys.stdout.write(json_lines(rows))
    else:
        print_history(rows, stdout_console())


@reaches_master
def top(
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """A live full-screen view of workers, queues and jobs (q or Ctrl-C ends it)."""
    from taskq.cli.render import run_top, stdout_console

    where = master.where()
    with user_errors(), contextlib.suppress(KeyboardInterrupt):
        link = master.link()
        try:
            run_top(link.remote.monitor, f"{where[0]}:{where[1]}", stdout_console(),
                    once)
        finally:
            link.close()
