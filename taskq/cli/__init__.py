"""The ``taskq`` command: every command and group joins the app here, explicitly.

    taskq master / worker          cli.serve    -> master.main.run / worker.worker.Worker
    taskq worker drain             cli.serve    -> Remote.worker_drain
    taskq submit / results / status / demo       cli.jobs     -> taskq.client.jobs
    taskq result ID                cli.retention -> taskq.client.retention (Client.future)
    taskq cancel                   cli.tasks    -> Remote.cancel_tasks
    taskq failed / replay          cli.replay   -> Remote.dead_letters, replay
    taskq inspect / explain / history / top      cli.observe  -> Remote.inspect, explain, history
    taskq schedule …  queue …  primitives …      cli.schedule, cli.queue, cli.prims (groups)

Each command parses its flags, builds a config and calls one core function; what they share
(one-line errors, the options that reach a master) is ``cli.common``; how output looks is
``cli.render``. A usage error exits 2, any other error a user can fix exits 1, each as one
line on stderr.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from taskq.cli import jobs, observe, prims, queue, replay, retention, schedule, serve, tasks
from taskq.cli.common import one_line

# typer raises click's exceptions (recent versions carry their own copy of click): the
# module that defines its BadParameter defines them all.
_click_errors: Any = importlib.import_module(typer.BadParameter.__module__)
_NO_ARGS_HELP: tuple[type[Exception], ...] = tuple(
    getattr(_click_errors, name) for name in ("NoArgsIsHelpError",) if hasattr(_click_errors, name))

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="taskq: a distributed task queue for Python with no broker to install.")
for command in (serve.master, jobs.submit, jobs.results, retention.result,
                jobs.status, jobs.demo, observe.inspect, observe.explain, observe.history,
                observe.top, tasks.cancel, replay.failed, replay.replay):
    app.command()(command)
app.add_typer(serve.worker_app, name="worker")
app.add_typer(schedule.app, name="schedule")
app.add_typer(queue.app, name="queue")
app.add_typer(prims.app, name="primitives")


def main(argv: list[str] | None = None) -> None:
    """The ``taskq`` entry point."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the command line; a usage error is one line on stderr. Returns the exit code."""
    try:
        code = app(args=argv, prog_name="taskq", standalone_mode=False)
    except _NO_ARGS_HELP as exc:
        typer.echo(exc.ctx.get_help())  # type: ignore[attr-defined]
        return 2
    except _click_errors.UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"taskq: error: {one_line(exc.format_message())}{hint}", err=True)
        return int(exc.exit_code)
    except _click_errors.ClickException as exc:
        typer.echo(f"taskq: error: {one_line(exc.format_message())}", err=True)
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("taskq: aborted", err=True)
        return 1
    return code if isinstance(code, int) else 0
