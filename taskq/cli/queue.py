"""``taskq queue ...``: per-queue rate and concurrency limits, pauses and purges, kept by
the master.

    taskq queue set NAME [--rate 10/s] [--concurrency 4]
    taskq queue clear NAME
    taskq queue pause|resume NAME      a paused queue accepts tasks and leases none
    taskq queue purge NAME             cancel every task of it that no worker holds
    taskq queue list [--json]          depth, running, limits, paused
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, TypeVar

import typer

from taskq.cli.common import JsonOpt, MasterOpts, fail, reaches_master
from taskq.protocol.api import BrokerAPI
from taskq.protocol.options import parse_rate
from taskq.protocol.replies import QueueRow

T = TypeVar("T")


def _queue_name(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("a queue name cannot be empty")
    return value


QueueArg = Annotated[str, typer.Argument(help="The queue.", callback=_queue_name)]

app = typer.Typer(no_args_is_help=True, help="Queues: their rate and concurrency limits, "
                  "pauses and purges.")


def _rows(master: MasterOpts, name: str = "", rate: float = 0.0,
          concurrency: int | None = None) -> list[QueueRow]:
    """Set a queue's limits first when ``concurrency`` is given; return every queue."""
    def call(remote: BrokerAPI) -> list[QueueRow]:
        if concurrency is not None:
            remote.queue_set(name, rate=rate, concurrency=concurrency)
        return remote.queues()

    rows: list[QueueRow] = master.ask(call)
    return rows


@app.command("set")
@reaches_master
def set_(
    name: Annotated[str, typer.Argument(help="The queue.")],
    rate: Annotated[str | None, typer.Option(
        help="At most this many tasks start: 10/s, 600/m, 5/h.")] = None,
    concurrency: Annotated[int, typer.Option(
        min=0, help="At most this many run at once (0: no limit).")] = 0,
    *,
    master: MasterOpts,
) -> None:
    """Limit how fast a queue's tasks start and how many run at once (tasks wait on the
    master, holding no worker; other queues are never held up)."""
    try:
        per_s = parse_rate(rate) if rate is not None else 0.0
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rate") from None
    if not per_s and not concurrency:
        raise typer.BadParameter("give --rate or --concurrency (taskq queue clear removes "
                                 "a queue's limits)")
    _rows(master, name, per_s, concurrency)
    typer.echo(f"queue {name}: rate {_rate(per_s)}, concurrency {concurrency or 'no limit'}")


@app.command("clear")
@reaches_master
def clear(name: str, *, master: MasterOpts) -> None:
    """Remove a queue's limits."""
    _rows(master, name, 0.0, 0)
    typer.echo(f"queue {name}: no limits")


@app.command("pause")
@reaches_master
def pause(name: QueueArg, *,
          master: MasterOpts) -> None:
    """Lease none of a queue's tasks until it is resumed; it still accepts tasks, its
    running tasks finish, and the pause outlives a master restart."""
    changed = _known(name, master.ask(lambda r: r.queue_pause(name, paused=True)))
    typer.echo(f"queue {name}: paused" if changed else f"queue {name}: already paused")


@app.command("resume")
@reaches_master
def resume(name: QueueArg, *,
           master: MasterOpts) -> None:
    """Let a paused queue's tasks run again."""
    changed = _known(name, master.ask(lambda r: r.queue_pause(name, paused=False)))
    typer.echo(f"queue {name}: resumed" if changed else f"queue {name}: was not paused")


@app.command("purge")
@reaches_master
def purge(name: QueueArg, *,
          master: MasterOpts) -> None:
    """Cancel every task of a queue that no worker holds (queued, or waiting for its time);
    their submitters see them cancelled. Leased and running tasks are left alone."""
    count = _known(name, master.ask(lambda r: r.queue_purge(name)))
    typer.echo(f"queue {name}: purged {count} task{'s' * (count != 1)}")


@app.command("list")
@reaches_master
def list_(as_json: JsonOpt = False, *, master: MasterOpts) -> None:
    """Every queue with tasks, limits or a pause: depth, running, limits, paused."""
    rows = _rows(master)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    for r in rows:
        typer.echo(f"{r.name}\tqueued {r.depth}\trunning {r.running}\trate {_rate(r.rate)}"
                   f"\tconcurrency {r.concurrency or 'no limit'}"
                   + ("\tpaused" if r.paused else ""))


def _known(name: str, answer: T | None) -> T:
    """The master's answer for a queue it knows; else one line and exit 1."""
    if answer is None:
        fail(f"no queue named {name!r}: a queue is known once it has tasks, a worker "
             f"serving it, limits or a pause (`taskq queue list` shows them)")
    return answer


def _rate(per_s: float) -> str:
    return f"{per_s:g}/s" if per_s else "no limit"
