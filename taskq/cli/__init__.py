"""The ``taskq`` command: parse flags, build a config, call one core function.

    taskq master   -> taskq.master.main.run        taskq submit  -> taskq.client.jobs.submit
    taskq worker   -> taskq.worker.worker.Worker     taskq results -> taskq.client.jobs.collect
    taskq demo     -> taskq.cli.demo.run          taskq status  -> Remote.status
    taskq cancel   -> Remote.cancel_tasks     taskq status --job -> Remote.running_tasks
    taskq primitives [delete NAME]            -> Remote.primitives / delete_primitive

This module holds the ``taskq`` app, the options and helpers its commands share, and
``master`` and ``worker``; the other commands join the app from their own modules:
``cli_jobs`` (submit, results, status, demo), ``cli_observe``, ``cli_tasks``, and the groups
of ``cli_schedule``, ``cli_queue`` and ``cli_prims``.

Errors a user can fix are one line on stderr, never a traceback: a usage error (a bad
flag, a missing argument, a bad value) exits 2, any other error (the master unreachable
or failing, a rejected key) exits 1.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from taskq import defaults, logs
from taskq.errors import TaskqError
from taskq.net import tls
from taskq.net.connection import parse_address
from taskq.net.keys import AuthkeyMissing, master_authkeys, resolve_authkey
from taskq.net.link import Link
from taskq.protocol.api import Remote

# typer raises click's exceptions (recent versions carry their own copy of click): the
# module that defines its BadParameter defines them all.
_click_errors: Any = importlib.import_module(typer.BadParameter.__module__)
_NO_ARGS_HELP: tuple[type[Exception], ...] = tuple(
    getattr(_click_errors, name) for name in ("NoArgsIsHelpError",) if hasattr(_click_errors, name))

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="taskq: a distributed task queue for Python with no broker to install.")

AddressOpt = Annotated[str | None, typer.Option(
    "--address", envvar=defaults.ENV_ADDRESS, show_envvar=True,
    help="The master as HOST:PORT.")]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--authkey-file", help=f"File holding the authkey (else ${defaults.ENV_AUTHKEY}).")]
TlsCaOpt = Annotated[Path | None, typer.Option(
    "--tls-ca", envvar=tls.ENV_CA, show_envvar=True,
    help="CA certificate(s): verify the master (on the master: require client certificates "
         "signed by it).")]
TlsCertOpt = Annotated[Path | None, typer.Option(
    "--tls-cert", envvar=tls.ENV_CERT, show_envvar=True,
    help="This side's certificate (the master's; a peer's for mutual TLS).")]
TlsKeyOpt = Annotated[Path | None, typer.Option(
    "--tls-key", envvar=tls.ENV_KEY, show_envvar=True, help="The private key of --tls-cert.")]
LogJsonOpt = Annotated[bool, typer.Option("--log-json", help="Log JSON lines even on a terminal.")]


def _log_level(value: str) -> str:
    try:
        logs.parse_level(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


LogLevelOpt = Annotated[str, typer.Option("--log-level", callback=_log_level,
                                          help="debug, info, warning or error.")]


def one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"taskq: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line and exit code 1."""
    try:
        yield
    except (TaskqError, AuthkeyMissing, ValueError, OSError) as exc:
        fail(str(exc) or type(exc).__name__)


def _address(text: str | None, flag: str = "--address") -> tuple[str, int]:
    if not text:
        raise typer.BadParameter(f"no master address: pass --address HOST:PORT or set "
                                 f"{defaults.ENV_ADDRESS}", param_hint=flag)
    try:
        return parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _tls(ca: Path | None, cert: Path | None, key: Path | None) -> tls.TLS | None:
    """TLS settings from --tls-ca/--tls-cert/--tls-key (or TASKQ_TLS_*); None: plain TCP."""
    try:
        return tls.TLS.from_env(ca, cert, key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tls-ca/--tls-cert/--tls-key") from None


def _open_link(address: tuple[str, int], key_file: Path | None,
               on_connect: Callable[[Remote], None] | None = None,
               tls_settings: tls.TLS | None = None) -> Link:
    link = Link(address, resolve_authkey(None, key_file), reconnect_for=defaults.CONNECT_TIMEOUT_S,
                on_connect=on_connect, tls_settings=tls_settings)
    link.open(defaults.CONNECT_TIMEOUT_S)
    return link


def _on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


@app.command()
def master(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",  # noqa: S104 -- a master serves a cluster: every interface by default; --host narrows it
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")]
    = defaults.PORT,
    authkey_file: Annotated[list[Path] | None, typer.Option(
        "--authkey-file", help=f"File of authkeys, one per line (else ${defaults.ENV_AUTHKEY}); "
                               f"give it twice, or give several lines, to accept old and new "
                               f"keys while rotating (the first is the master's own).")] = None,
    state: Annotated[Path | None, typer.Option(
        help="Journal file (default: ~/.local/state/taskq/journal.db).")] = None,
    in_memory: Annotated[bool, typer.Option(
        "--in-memory", help="Keep no journal: a restart forgets every task.")] = False,
    lost_after: Annotated[float, typer.Option(
        min=0.5, help="Seconds of worker silence before its tasks are requeued.")]
    = defaults.LOST_AFTER_S,
    max_attempts: Annotated[int, typer.Option(
        min=1, help="Lost workers a task may go through before it fails.")]
    = defaults.MAX_LOST_ATTEMPTS,
    max_payload: Annotated[float, typer.Option(
        min=0.001, help="Largest task accepted, in MiB.")] = defaults.MAX_PAYLOAD_MB,
    max_pending: Annotated[int, typer.Option(
        min=1, help="Queued tasks held before submitters wait for room.")]
    = defaults.MAX_PENDING,
    result_ttl: Annotated[float, typer.Option(
        min=1, help="Seconds a gone Client's results are kept (named jobs: until fetched).")]
    = defaults.RESULT_TTL_S,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    http: Annotated[str, typer.Option(
        "--http", help="Serve the dashboard, JSON API and /metrics on HOST:PORT (:0 picks a "
        "free port), or off.")] = defaults.HTTP_DEFAULT,
    http_token_file: Annotated[Path | None, typer.Option(
        help=f"File holding the web token (else ${defaults.ENV_HTTP_TOKEN}); required "
        f"when --http is not loopback.")] = None,
    metrics_public: Annotated[bool, typer.Option(
        "--metrics-public", help="Serve /metrics without the token.")] = False,
    history: Annotated[str, typer.Option(
        help="How long task history is kept, e.g. 7d, 12h, 30m.")] = "7d",
    log_json: LogJsonOpt = False,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run the master: it holds the queue and serves workers and clients."""
    from taskq.master import main as master_mod

    if state is not None and in_memory:
        raise typer.BadParameter("--state and --in-memory exclude each other")
    web = _http_config(http, http_token_file, metrics_public)
    keep = _duration(history, "--history")
    logs.configure(json=log_json or None, level=log_level)
    with user_errors():
        keys, key_path = master_authkeys(authkey_file or [])
        journal = None if in_memory else (state or defaults.state_dir() / "journal.db")
        config = master_mod.MasterConfig(host, port, keys[0], journal, lost_after, max_attempts,
                                         int(max_payload * 1024 * 1024), max_pending,
                                         result_ttl, _master_tls(tls_ca, tls_cert, tls_key),
                                         tuple(keys[1:]), web, http == defaults.HTTP_DEFAULT,
                                         keep)
        if key_path is not None:
            typer.echo(f"taskq master authkey file: {key_path} (copy it to workers; use "
                       f"--authkey-file or {defaults.ENV_AUTHKEY})")
        stop = threading.Event()
        _on_signals(stop.set)
        raise typer.Exit(master_mod.run(config, stop, _announce, _say))


def _say(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


def _duration(text: str, flag: str) -> float:
    from taskq.cli.render import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _http_config(text: str, token_file: Path | None, metrics_public: bool) -> Any:
    """The web server's settings from the flags (usage errors exit 2)."""
    from taskq.master.http import make_config

    try:
        return make_config(text, token_file, os.environ.get(defaults.ENV_HTTP_TOKEN, ""),
                           metrics_public)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--http") from None


def _master_tls(ca: Path | None, cert: Path | None, key: Path | None) -> tls.TLS | None:
    settings = _tls(ca, cert, key)
    if settings is not None and settings.cert is None:
        raise typer.BadParameter("a TLS master needs --tls-cert and --tls-key (with --tls-ca "
                                 "alone it could not prove who it is)", param_hint="--tls-cert")
    return settings


def _announce(address: str) -> None:
    """The master's one line on stdout once it accepts connections (scripts wait for it)."""
    typer.echo(f"taskq master listening on {address}")
    sys.stdout.flush()


def _pool_kind(value: str) -> str:
    from taskq.worker.worker import POOLS

    if value not in POOLS:
        raise typer.BadParameter(f"unknown pool {value!r}: expected one of {', '.join(POOLS)}")
    return value


def _pool_size(pool: str, procs: int | None, concurrency: int | None) -> int:
    """The pool's size: --concurrency, else --procs, else the pool's default."""
    if procs is not None and concurrency is not None and procs != concurrency:
        raise typer.BadParameter(f"--procs {procs} and --concurrency {concurrency} disagree: "
                                 "give one", param_hint="--concurrency")
    size = concurrency or procs
    if size is None:
        size = defaults.ASYNC_CONCURRENCY if pool == "asyncio" else os.cpu_count() or 1
    return size


def _resources(text: str | None) -> tuple[tuple[str, float], ...]:
    from taskq.protocol.options import parse_resources

    try:
        return () if text is None else parse_resources(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--resources") from None


@app.command()
def worker(
    connect: Annotated[str, typer.Option(help="The master as HOST:PORT.")],
    procs: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="Pool processes (default: CPU count).")] = None,
    authkey_file: KeyFileOpt = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to take tasks from.")]
    = "default",
    grace: Annotated[float, typer.Option(
        min=0, help="On SIGTERM, seconds running tasks get to finish.")] = defaults.GRACE_S,
    max_tasks_per_child: Annotated[int | None, typer.Option(
        min=1, help="Replace a pool process after this many tasks.")] = None,
    max_memory_per_child: Annotated[float | None, typer.Option(
        min=1, help="Replace a pool process whose resident size passes this (MiB).")] = None,
    connect_timeout: Annotated[float, typer.Option(
        min=0, help="Seconds to keep trying to reach the master.")] = defaults.RECONNECT_FOR_S,
    pool: Annotated[str, typer.Option(
        callback=_pool_kind, help="What runs the tasks: processes (CPU work), threads "
        "(blocking I/O) or asyncio (async def tasks on one event loop).")] = "processes",
    concurrency: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="Tasks run at once: the pool's size (default: CPU "
        f"count for processes and threads, {defaults.ASYNC_CONCURRENCY} for asyncio).")]
    = None,
    resources: Annotated[str | None, typer.Option(
        help="What this worker has, for tasks that need it: NAME=AMOUNT[,...], e.g. "
        "gpu=2,ram_gb=64.")] = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    log_json: LogJsonOpt = False,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run a worker: take tasks from the master and run them in its pool (processes,
    threads or an asyncio loop)."""
    from taskq.worker.worker import Worker, WorkerConfig

    address = _address(connect, "--connect")
    size = _pool_size(pool, procs, concurrency)
    have = _resources(resources)
    logs.configure(json=log_json or None, level=log_level)
    with user_errors():
        config = WorkerConfig(address, resolve_authkey(None, authkey_file),
                              size,
                              tuple(q.strip() for q in queues.split(",") if q.strip()),
                              grace, max_tasks_per_child, max_memory_per_child,
                              connect_for=connect_timeout, pool=pool, resources=have,
                              tls=_tls(tls_ca, tls_cert, tls_key))
        runner = Worker(config)
        _on_signals(runner.stop)
        raise typer.Exit(runner.run())


def _ask(address: str | None, key_file: Path | None, call: Callable[[Remote], Any]) -> Any:
    """One call to the master over a fresh link."""
    where = _address(address)
    with user_errors():
        link = _open_link(where, key_file)
        try:
            return call(link.remote)
        finally:
            link.close()


def _add_subcommands() -> None:
    from taskq.cli import jobs, observe, prims, queue, schedule, tasks

    app.add_typer(schedule.app, name="schedule")
    app.add_typer(queue.app, name="queue")
    app.add_typer(prims.app, name="primitives")
    del jobs, observe, tasks  # their commands joined ``app`` as they were imported


_add_subcommands()


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
