"""``taskq master`` and ``taskq worker``: the two long-running commands, each a thin layer that
builds its config and hands it to ``taskq.master.main.run`` or ``taskq.worker.worker.Worker``
(imported when the command runs, so the other commands never load either); and
``taskq worker drain ID``, which asks the master to make a running worker stop gracefully."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from taskq import defaults, logs, tracing
from taskq.cli.common import (
    KeyFileOpt,
    LogJsonOpt,
    LogLevelOpt,
    MasterOpts,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    address_of,
    duration,
    fail,
    on_signals,
    reaches_master,
    tls_of,
    user_errors,
)
from taskq.net import tls
from taskq.net.keys import master_authkeys, resolve_authkey


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
    result_ttl: Annotated[str, typer.Option(
        help="How long each task's result is kept after it ended, for reading by id "
        "(taskq result, Client.future), when the task sets no result_ttl: e.g. 1h, 30m; "
        "0 keeps none.")] = "0",
    abandoned_ttl: Annotated[float, typer.Option(
        min=1, help="Seconds a gone Client's unfetched results are kept (named jobs: until "
        "fetched).")] = defaults.RESULT_TTL_S,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    http: Annotated[str, typer.Option(
        "--http", help="Serve the dashboard, JSON API and /metrics on HOST:PORT (:0 picks a "
        "free port), or off. With --port 0 the default port is free-picked too.")]
    = defaults.HTTP_DEFAULT,
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
    web = _http_config(_http_address(http, port), http_token_file, metrics_public)
    keep = duration(history, "--history")
    kept_ttl = duration(result_ttl, "--result-ttl", positive=False)
    logs.configure(json=log_json or None, level=log_level)
    tracing.configure_from_env()
    with user_errors():
        keys, key_path = master_authkeys(authkey_file or [])
        journal = None if in_memory else (state or defaults.state_dir() / "journal.db")
        config = master_mod.MasterConfig(
            host=host, port=port, authkey=keys[0], state=journal, lost_after=lost_after,
            max_lost=max_attempts, max_payload=int(max_payload * 1024 * 1024),
            max_pending=max_pending, abandoned_ttl=abandoned_ttl, result_ttl=kept_ttl,
            tls=_master_tls(tls_ca, tls_cert, tls_key), more_keys=tuple(keys[1:]), http=web,
            http_is_default=http == defaults.HTTP_DEFAULT, history_s=keep)
        if key_path is not None:
            typer.echo(f"taskq master authkey file: {key_path} (copy it to workers; use "
                       f"--authkey-file or {defaults.ENV_AUTHKEY})")
        stop = threading.Event()
        on_signals(stop.set)
        raise typer.Exit(master_mod.run(config, stop, _announce, _say))


def _http_address(text: str, port: int) -> str:
    """--http as given; left at its default by a master on a free-picked port (--port 0),
    a free-picked port for the web server too, so two such masters never contend for it."""
    if port == 0 and text == defaults.HTTP_DEFAULT:
        return defaults.HTTP_DEFAULT.rsplit(":", 1)[0] + ":0"
    return text


def _say(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


def _http_config(text: str, token_file: Path | None, metrics_public: bool) -> Any:
    """The web server's settings from the flags (usage errors exit 2)."""
    from taskq.master.http import make_config

    try:
        return make_config(text, token_file, os.environ.get(defaults.ENV_HTTP_TOKEN, ""),
                           metrics_public)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--http") from None


def _master_tls(ca: Path | None, cert: Path | None, key: Path | None) -> tls.TLS | None:
    settings = tls_of(ca, cert, key)
    if settings is not None and settings.cert is None:
        raise typer.BadParameter("a TLS master needs --tls-cert and --tls-key (with --tls-ca "
                                 "alone it could not prove who it is)", param_hint="--tls-cert")
    return settings


def _announce(address: str) -> None:
    """The master's one line on stdout once it accepts connections (scripts wait for it)."""
    typer.echo(f"taskq master listening on {address}")
    sys.stdout.flush()


def _pool_kind(value: str) -> str:
    from taskq.worker.config import POOLS

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


def _import_paths(more: list[Path]) -> tuple[str, ...]:
    """Where tasks import the user's modules from: the working directory (as ``python -m``
    has it), then each ``--path``, as absolute paths (pool processes may start elsewhere)."""
    return tuple(dict.fromkeys(str(p) for p in [Path.cwd(), *(m.resolve() for m in more)]))


worker_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    connect: Annotated[str | None, typer.Option(
        show_default=False, help="The master as HOST:PORT (required to run a worker).")]
    = None,
    procs: Annotated[int | None, typer.Option(
        min=1, show_default=False, help="Pool processes (default: CPU count).")] = None,
    authkey_file: KeyFileOpt = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to take tasks from.")]
    = "default",
    grace: Annotated[float, typer.Option(
        min=0, help="On SIGTERM or a drain, seconds running tasks get to finish (the rest "
        "go back to the queue at once).")] = defaults.GRACE_S,
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
    path: Annotated[list[Path] | None, typer.Option(
        "--path", exists=True, file_okay=False, help="A directory tasks import their "
        "modules from, besides the working directory (repeatable).")] = None,
    setup: Annotated[list[str] | None, typer.Option(
        "--setup", metavar="MODULE:FUNCTION", help="Run this function once where tasks run, "
        "before the first: in each pool process, or once for the threads or asyncio pool "
        "(logging, Sentry, a database pool); repeatable, in order. If it raises, the "
        "worker does not start.")] = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    log_json: LogJsonOpt = False,
    log_level: LogLevelOpt = "info",
) -> None:
    """Run a worker: take tasks from the master and run them in its pool (processes,
    threads or an asyncio loop). SIGTERM, SIGINT or `taskq worker drain ID` stop it
    gracefully."""
    if ctx.invoked_subcommand is not None:
        return
    from taskq.worker.config import WorkerConfig
    from taskq.worker.worker import Worker

    address = address_of(connect, "--connect")
    size = _pool_size(pool, procs, concurrency)
    have = _resources(resources)
    logs.configure(json=log_json or None, level=log_level)
    tracing.configure_from_env()
    with user_errors():
        config = WorkerConfig(
            address=address, authkey=resolve_authkey(None, authkey_file), procs=size,
            queues=tuple(q.strip() for q in queues.split(",") if q.strip()), grace=grace,
            max_tasks_per_child=max_tasks_per_child, max_memory_mb=max_memory_per_child,
            connect_for=connect_timeout, pool=pool, resources=have,
            tls=tls_of(tls_ca, tls_cert, tls_key), paths=_import_paths(path or []),
            setup=tuple(setup or ()))
        runner = Worker(config)
        on_signals(runner.stop)
        raise typer.Exit(runner.run())


@worker_app.command("drain")
@reaches_master
def drain(
    worker_id: Annotated[str, typer.Argument(help="The worker, as `taskq status` shows it.")],
    *,
    master: MasterOpts,
) -> None:
    """Make a running worker finish what it runs, take nothing new, hand back what it has
    not begun and exit 0, from any host (it hears it with its next heartbeat)."""
    if not master.ask(lambda r: r.worker_drain(worker_id)):
        fail(f"no worker {worker_id} is connected to the master (`taskq status` lists them)")
    typer.echo(f"worker {worker_id}: draining")
