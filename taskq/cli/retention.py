"""``taskq result TASK_ID``: one task's result, read by its id from any shell (``result``
joins the ``taskq`` command as this is imported).

    taskq result ID [--wait] [--json] ──► taskq.client.retention ──► repr (or JSON) on
        stdout, exit 0; the task failed ──► "TYPE: message" on stderr, exit 1; no result to
        be had (not ended without --wait, expired, unknown, not JSON) ──► one line, exit 1
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from taskq import defaults
from taskq.cli.common import MasterOpts, reaches_master, user_errors
from taskq.errors import ConnectError, MasterError, ResultExpired, SerializationError


@reaches_master
def result(
    task_id: Annotated[str, typer.Argument(
        help="The task's id (as `taskq submit` or TaskFuture.task_id give it).",
        show_default=False)],
    wait: Annotated[bool, typer.Option(help="Wait until the task ended.")] = False,
    timeout: Annotated[float | None, typer.Option(
        min=0.001, help="With --wait, give up after this many seconds.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the result as JSON (an error if it is not JSON-serialisable).")]
    = False,
    *,
    master: MasterOpts,
) -> None:
    """Print a task's result by its id: its repr, or JSON with --json. The master holds it
    while the task runs, until its submitter took it, and for the task's result_ttl after
    it ended. Exit 1 if the task failed (its exception's type and message on stderr), or if
    there is no result to print (not ended yet without --wait, expired, unknown)."""
    from taskq.client import retention
    from taskq.client.client import Client
    from taskq.net.keys import resolve_authkey

    where, settings = master.where(), master.tls()
    with user_errors():
        client = Client(where, resolve_authkey(None, master.authkey_file), tls=settings,
                        reconnect_for=defaults.CONNECT_TIMEOUT_S)
        try:
            future = retention.open_future(client, task_id, wait=wait)
            value = _value(retention.outcome, future, timeout)
        finally:
            client.shutdown(wait=False, cancel_futures=True)
        typer.echo(retention.as_json(task_id, value) if as_json else repr(value))


def _value(outcome: Any, future: Any, timeout: float | None) -> Any:
    """The task's value; if it failed, its exception's type and message on one stderr line
    and exit 1 (what kept the result from being read goes on to ``user_errors``)."""
    from taskq.client import retention

    try:
        return outcome(future, timeout)
    except (ResultExpired, ConnectError, MasterError, SerializationError, TimeoutError):
        raise
    except Exception as exc:  # how the task ended: its own exception, or a taskq failure
        typer.echo(retention.failure_line(exc), err=True)
        raise typer.Exit(1) from None
