"""``taskq primitives [--json]`` and ``taskq primitives delete NAME``: the shared primitives
the master hosts, from the command line (thin over the broker's primitive calls)."""

from __future__ import annotations

from typing import Annotated

import typer

from taskq.cli.common import MasterOpts, fail, reaches_master, user_errors

app = typer.Typer(help="List the shared primitives the master hosts (locks, semaphores, "
                  "dicts, counters, queues, events): name, kind, holders, waiters, size; or "
                  "delete one.")


@app.callback(invoke_without_command=True)
@reaches_master
def primitives(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    master: MasterOpts,
) -> None:
    """List the shared primitives: name, kind, holders, waiters, size."""
    from taskq.cli.prim_view import render

    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        link = master.link()
        try:
            rows = link.remote.primitives()
        finally:
            link.close()
    typer.echo(render(rows, as_json))


@app.command("delete")
@reaches_master
def primitives_delete(
    name: Annotated[str, typer.Argument(help="The primitive's name (every kind by that name).")],
    kind: Annotated[str | None, typer.Option(help="Delete only this kind.")] = None,
    *,
    master: MasterOpts,
) -> None:
    """Delete a shared primitive; its holders and waiters lose it. Exit 1 if none."""
    from taskq.protocol.prims import KINDS, check_name

    try:
        check_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"bad kind {kind!r}: expected one of {', '.join(KINDS)}",
                                 param_hint="--kind")
    with user_errors():
        link = master.link()
        try:
            gone = link.remote.delete_primitive(name, kind=kind)
        finally:
            link.close()
    if not gone:
        fail(f"no shared primitive named {name!r}")
    typer.echo(f"deleted {', '.join(gone)} {name!r}")
