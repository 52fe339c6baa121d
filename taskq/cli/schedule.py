"""``taskq schedule ...``: periodic schedules run by the master, from the command line.

    taskq schedule add NAME MODULE:FUNC [ARGS] --cron EXPR | --every 30s [--tz ZONE]
    taskq schedule list [--json]          next run, last run and its outcome
    taskq schedule remove|pause|resume NAME

Thin over ``taskq.client.jobs.schedule_spec`` and the broker's schedule calls; a schedule's runs are
the job ``schedule:NAME`` (``taskq results schedule:NAME``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from taskq.cli.common import JsonOpt, MasterOpts, fail, reaches_master
from taskq.client import jobs
from taskq.protocol.api import BrokerAPI
from taskq.protocol.messages import Schedule
from taskq.protocol.options import make_options, parse_duration

app = typer.Typer(no_args_is_help=True, help="Periodic schedules, run by the master.")


@app.command("add")
@reaches_master
def add(
    name: Annotated[str, typer.Argument(help="The schedule's name (its runs: job schedule:NAME).")],
    target: Annotated[str, typer.Argument(help="The function to run, as MODULE:FUNC.")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Arguments; each is a JSON literal where it is one, else a string.")] = None,
    cron: Annotated[str, typer.Option(help="Cron expression, e.g. '0 2 * * *'.")] = "",
    every: Annotated[str, typer.Option(help="Interval instead of cron: 30s, 10m, 1h.")] = "",
    tz: Annotated[str, typer.Option(help="Time zone of the cron expression.")] = "UTC",
    catch_up: Annotated[str, typer.Option(
        help="Ticks missed while the master was down: once (one run) or skip.")] = "once",
    queue: Annotated[str, typer.Option(help="Queue its tasks go to.")] = "default",
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Hard limit, s.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Re-runs of a run that raises.")] = 0,
    expires: Annotated[str | None, typer.Option(
        help="A run not started within this long of its tick never runs: 30s, 10m.")] = None,
    *,
    master: MasterOpts,
) -> None:
    """Add a schedule (or replace the one of that name)."""
    try:
        seconds = None if expires is None else parse_duration(expires, positive=True)
        spec = jobs.schedule_spec(name, target, args or [], make_options(
            timeout, retries, 0, queue, expires=seconds), cron, every, tz, catch_up)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    replaced = master.ask(lambda r: r.schedule_add(spec))
    typer.echo(f"schedule {name} {'replaced' if replaced else 'added'}; its runs are the job "
               f"{spec.job}")


@app.command("list")
@reaches_master
def list_(as_json: JsonOpt = False, *, master: MasterOpts) -> None:
    """Show every schedule: when it runs next, and its last run and outcome."""
    specs: list[Schedule] = master.ask(lambda r: r.schedules())
    if as_json:
        rows = [{k: v for k, v in asdict(s).items() if k not in ("fn", "args", "options")}
                | {"queue": s.options.queue} for s in specs]
        typer.echo(json.dumps(rows, indent=2))
        return
    for s in specs:
        when = (s.cron and f"cron '{s.cron}' {s.tz}") or f"every {s.every:g}s"
        state = "paused" if s.paused else f"next {_when(s.next_run)}"
        last = f"last {_when(s.last_run)} {s.last_outcome or 'running'}" if s.last_run \
            else "never run"
        typer.echo(f"{s.name}\t{when}\t{state}\t{last}")
    if not specs:
        typer.echo("no schedules", err=True)


def _change(name: str, master: MasterOpts,
            use: Callable[[BrokerAPI], bool], done: str) -> None:
    found = master.ask(use)
    if not found:
        fail(f"no schedule named {name}")
    typer.echo(f"schedule {name} {done}")


@app.command("remove")
@reaches_master
def remove(name: str, *, master: MasterOpts) -> None:
    """Remove a schedule (runs already made still run)."""
    _change(name, master, lambda r: r.schedule_remove(name), "removed")


@app.command("pause")
@reaches_master
def pause(name: str, *, master: MasterOpts) -> None:
    """Stop making runs until resumed."""
    _change(name, master, lambda r: r.schedule_pause(name, paused=True), "paused")


@app.command("resume")
@reaches_master
def resume(name: str, *, master: MasterOpts) -> None:
    """Make runs again, from the next tick (ticks it slept through are not made up)."""
    _change(name, master, lambda r: r.schedule_pause(name, paused=False), "resumed")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")

