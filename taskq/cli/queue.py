"""``taskq queue ...``: per-queue rate and concurrency limits, kept by the master.

    taskq queue set NAME [--rate 10/s] [--concurrency 4]
    taskq queue clear NAME
    taskq queue list [--json]          depth, running, limits
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from taskq.cli.common import JsonOpt, MasterOpts, reaches_master
from taskq.master.state.limits import parse_rate
from taskq.protocol.api import BrokerAPI
from taskq.protocol.replies import QueueRow

app = typer.Typer(no_args_is_help=True, help="Queues and their rate and concurrency limits.")


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


@app.command("list")
@reaches_master
def list_(as_json: JsonOpt = False, *, master: MasterOpts) -> None:
    """Every queue with tasks or limits: depth, running, limits."""
    rows = _rows(master)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    for r in rows:
        typer.echo(f"{r.name}\tqueued {r.depth}\trunning {r.running}\trate {_rate(r.rate)}"
                   f"\tconcurrency {r.concurrency or 'no limit'}")


def _rate(per_s: float) -> str:
    return f"{per_s:g}/s" if per_s else "no limit"
